//! The alignment model's training set, assembled from the corpus: every `train` chain with what
//! it has (sequence; structure vector where pooled; function texts where annotated) and, for
//! sequence–text pairs, a seeded sample of Swiss-Prot entries that no `val` chain shares an
//! accession or a sequence with. Texts are interned (one row per distinct text) with the facts
//! (GO ids, EC numbers) each states.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;

use super::data::{Annotation, Ontology};
use super::descriptions::{Phrasing, facts as all_facts, phrasings, query_text};
use super::training::AlignItem;
use crate::structure::JsonChain;

/// How the set is drawn.
#[derive(Debug, Clone)]
pub struct DatasetOptions {
    /// Phrasings per annotated chain (Swiss-Prot entries get at most 2).
    pub phrasings: usize,
    /// Swiss-Prot entries to sample.
    pub max_swissprot: usize,
    /// Seed of the Swiss-Prot sample.
    pub seed: u64,
    /// Keep each structure item's C-alpha coordinates (stage 2 feeds them to the network).
    pub coordinates: bool,
}

/// How many items of each kind the set holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DatasetCounts {
    /// Train chains with all three modalities.
    pub triples: usize,
    /// Train chains with a structure vector and no text.
    pub sequence_structure: usize,
    /// Train chains with text and no structure vector.
    pub sequence_text_chains: usize,
    /// Swiss-Prot sequence–text items.
    pub swissprot: usize,
    /// Train chains without a structure vector.
    pub missing_structure: usize,
}

/// The assembled set.
#[derive(Debug)]
pub struct AlignDataset {
    /// The items, train chains first (in file order), then Swiss-Prot entries.
    pub items: Vec<AlignItem>,
    /// The distinct texts (items point into this table).
    pub texts: Vec<String>,
    /// The interned facts each text states, sorted.
    pub text_facts: Vec<Vec<u32>>,
    /// What the set holds.
    pub counts: DatasetCounts,
}

/// A label for "same molecular-function set" (`None`: no informative term): items with one label
/// are not each other's negatives.
pub fn function_group(ontology: &Ontology, function: &[String]) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let text = query_text(ontology, function);
    if text.is_empty() {
        return None;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    Some(h.finish())
}

/// Interned facts (GO ids, EC numbers).
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
}

impl Interner {
    /// The sorted ids of some facts (new facts get new ids).
    fn of(&mut self, f: &[String]) -> Vec<u32> {
        let mut v: Vec<u32> = f
            .iter()
            .map(|x| {
                let next = self.ids.len() as u32;
                *self.ids.entry(x.clone()).or_insert(next)
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Distinct training texts and the facts each states.
#[derive(Default)]
struct TextTable {
    texts: Vec<String>,
    facts: Vec<Vec<u32>>,
    index: HashMap<String, usize>,
}

impl TextTable {
    fn add(&mut self, p: Phrasing, facts: &mut Interner) -> usize {
        if let Some(&i) = self.index.get(&p.text) {
            return i;
        }
        self.texts.push(p.text.clone());
        self.facts.push(facts.of(&p.facts));
        self.index.insert(p.text, self.texts.len() - 1);
        self.texts.len() - 1
    }
}

/// Assemble the training set. `chains`: the structure corpus (only `train` chains are used);
/// `function`: the chains' annotations (obsolete terms already left out); `structures`: pooled
/// structure vectors by chain name; `swissprot`: Swiss-Prot entries (obsolete terms already left
/// out), or none.
pub fn assemble(
    chains: &[JsonChain],
    function: &[Annotation],
    ontology: &Ontology,
    structures: &HashMap<String, Vec<f32>>,
    swissprot: Option<Vec<Annotation>>,
    options: &DatasetOptions,
) -> AlignDataset {
    let o = ontology;
    let annotated: HashMap<&str, &Annotation> =
        function.iter().map(|a| (a.name.as_str(), a)).collect();
    let mut facts = Interner::default();
    let mut table = TextTable::default();
    let mut items = Vec::new();
    let mut counts = DatasetCounts::default();
    for c in chains.iter().filter(|c| c.split == "train") {
        let structure = structures.get(&c.name).cloned();
        let (phr, group) = match annotated.get(c.name.as_str()) {
            Some(a) => (
                phrasings(o, a, options.phrasings),
                function_group(o, &a.function),
            ),
            None => (Vec::new(), None),
        };
        if structure.is_none() {
            counts.missing_structure += 1;
        }
        match (&structure, phr.is_empty()) {
            (Some(_), false) => counts.triples += 1,
            (Some(_), true) => counts.sequence_structure += 1,
            (None, false) => counts.sequence_text_chains += 1,
            (None, true) => continue,
        }
        let coordinates = (options.coordinates
            && structure.is_some()
            && c.chain.ca.len() == c.chain.sequence.len())
        .then(|| Arc::from(c.chain.ca.as_slice()));
        items.push(AlignItem {
            sequence: c.chain.sequence.clone(),
            structure,
            coordinates,
            texts: phr.into_iter().map(|p| table.add(p, &mut facts)).collect(),
            group,
            facts: annotated
                .get(c.name.as_str())
                .map(|a| facts.of(&all_facts(a)))
                .unwrap_or_default(),
        });
    }
    // Swiss-Prot: never an entry of a val chain, nor a sequence equal to one.
    if let Some(mut entries) = swissprot {
        let val_names: HashSet<&str> = chains
            .iter()
            .filter(|c| c.split == "val")
            .map(|c| c.name.as_str())
            .collect();
        let val_accessions: HashSet<&str> = function
            .iter()
            .filter(|a| val_names.contains(a.name.as_str()))
            .flat_map(|a| a.uniprot.iter().map(String::as_str))
            .collect();
        let val_sequences: HashSet<&str> = chains
            .iter()
            .filter(|c| c.split == "val")
            .map(|c| c.chain.sequence.as_str())
            .collect();
        entries.retain(|e| {
            !e.uniprot
                .iter()
                .any(|u| val_accessions.contains(u.as_str()))
                && !e
                    .sequence
                    .as_deref()
                    .is_some_and(|s| val_sequences.contains(s))
                && !phrasings(o, e, 1).is_empty()
        });
        let mut rng = StdRng::seed_from_u64(options.seed);
        entries.shuffle(&mut rng);
        entries.truncate(options.max_swissprot);
        for e in &entries {
            let Some(sequence) = &e.sequence else {
                continue;
            };
            if sequence.is_empty() {
                continue;
            }
            items.push(AlignItem {
                sequence: sequence.clone(),
                structure: None,
                coordinates: None,
                texts: phrasings(o, e, options.phrasings.min(2))
                    .into_iter()
                    .map(|p| table.add(p, &mut facts))
                    .collect(),
                group: function_group(o, &e.function),
                facts: facts.of(&all_facts(e)),
            });
            counts.swissprot += 1;
        }
    }
    AlignDataset {
        items,
        texts: table.texts,
        text_facts: table.facts,
        counts,
    }
}

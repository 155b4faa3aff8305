//! The alignment data: function annotations of chains (`chain_function.jsonl.gz`), the GO term
//! table (`go_terms.tsv.gz`), the GO graph (`go_parents.tsv.gz`) and Swiss-Prot sequence–GO
//! pairs (`swissprot50_go.tsv.gz`). See `../shared/docs/data.md`.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;

use crate::io::{json_lines, maybe_gunzip};
use crate::structure::ReadError;

/// Largest decompressed input accepted (bytes).
const MAX_BYTES: usize = 1 << 30;

/// GO namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    /// Molecular function (MF, MFO).
    Function,
    /// Biological process (BP, BPO).
    Process,
    /// Cellular component (CC, CCO).
    Component,
}

impl Namespace {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "molecular_function" => Some(Self::Function),
            "biological_process" => Some(Self::Process),
            "cellular_component" => Some(Self::Component),
            _ => None,
        }
    }
}

/// Function annotations of one protein (a chain or a Swiss-Prot entry).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Annotation {
    /// Chain name (`1A0C_D_1`) or Swiss-Prot accession.
    pub name: String,
    /// Molecular-function GO ids, sorted.
    pub function: Vec<String>,
    /// Biological-process GO ids, sorted.
    pub process: Vec<String>,
    /// Cellular-component GO ids, sorted.
    pub component: Vec<String>,
    /// EC numbers.
    pub ec: Vec<String>,
    /// UniProt accessions (chains: those mapped to it; Swiss-Prot: its own).
    pub uniprot: Vec<String>,
    /// The sequence, where the source has it (Swiss-Prot).
    pub sequence: Option<String>,
}

impl Annotation {
    /// Drop the GO ids `ontology` does not know (the 2014 annotations name terms that were made
    /// obsolete before the 2022 release of the term file: they have no name, definition or
    /// parents to describe or propagate them). Returns how many were dropped.
    pub fn retain_known(&mut self, ontology: &Ontology) -> usize {
        let before = self.function.len() + self.process.len() + self.component.len();
        for ids in [&mut self.function, &mut self.process, &mut self.component] {
            ids.retain(|id| ontology.terms.contains_key(id));
        }
        before - (self.function.len() + self.process.len() + self.component.len())
    }
}

#[derive(Deserialize)]
struct FunctionLine {
    name: String,
    #[serde(default)]
    go: HashMap<String, Vec<String>>,
    #[serde(default)]
    ec: Vec<String>,
    #[serde(default)]
    uniprot: Vec<String>,
}

fn text(bytes: &[u8], what: &str) -> Result<String, ReadError> {
    let data = maybe_gunzip(bytes, MAX_BYTES)?;
    String::from_utf8(data.into_owned())
        .map_err(|e| ReadError::NotStructure(format!("{what} is not UTF-8 ({e})")))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// Read `chain_function.jsonl(.gz)`.
pub fn read_function_jsonl(bytes: &[u8]) -> Result<Vec<Annotation>, ReadError> {
    let text = text(bytes, "the function file")?;
    let mut out = Vec::new();
    for (line_no, raw) in json_lines(&text) {
        let mut line: FunctionLine = serde_json::from_str(raw).map_err(|e| ReadError::Json {
            line: line_no,
            message: e.to_string(),
        })?;
        let mut take = |k: &str| sorted(line.go.remove(k).unwrap_or_default());
        out.push(Annotation {
            function: take("molecular_function"),
            process: take("biological_process"),
            component: take("cellular_component"),
            name: line.name,
            ec: line.ec,
            uniprot: line.uniprot,
            sequence: None,
        });
    }
    if out.is_empty() {
        return Err(ReadError::NotStructure(
            "the function file has no lines".into(),
        ));
    }
    Ok(out)
}

fn tsv_error(line: usize, message: String) -> ReadError {
    ReadError::Json { line, message }
}

/// Read `swissprot50_go.tsv(.gz)` (header `accession MFO BPO CCO sequence`).
pub fn read_swissprot_tsv(bytes: &[u8]) -> Result<Vec<Annotation>, ReadError> {
    let text = text(bytes, "the Swiss-Prot file")?;
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h))
            if h.split('\t').collect::<Vec<_>>()
                == ["accession", "MFO", "BPO", "CCO", "sequence"] => {}
        _ => {
            return Err(tsv_error(
                1,
                "expected the header `accession MFO BPO CCO sequence`".into(),
            ));
        }
    }
    let ids = |s: &str| {
        sorted(
            s.split(',')
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect(),
        )
    };
    let mut out = Vec::new();
    for (index, raw) in lines {
        if raw.is_empty() {
            continue;
        }
        let f: Vec<&str> = raw.split('\t').collect();
        if f.len() != 5 {
            return Err(tsv_error(
                index + 1,
                format!("{} fields, expected 5", f.len()),
            ));
        }
        out.push(Annotation {
            name: f[0].to_string(),
            function: ids(f[1]),
            process: ids(f[2]),
            component: ids(f[3]),
            ec: Vec::new(),
            uniprot: vec![f[0].to_string()],
            sequence: Some(f[4].to_string()),
        });
    }
    Ok(out)
}

/// One GO term.
#[derive(Debug, Clone, PartialEq)]
pub struct GoTerm {
    /// `GO:0003677`.
    pub id: String,
    /// Its namespace.
    pub namespace: Namespace,
    /// Its name (`DNA binding`).
    pub name: String,
    /// Its definition (empty for some recent terms).
    pub definition: String,
}

/// The root of the molecular-function namespace (GO:0003674, "molecular_function").
pub const MF_ROOT: &str = "GO:0003674";

/// The GO terms and their parents.
#[derive(Debug, Clone, Default)]
pub struct Ontology {
    /// Terms by id.
    pub terms: HashMap<String, GoTerm>,
    /// Parents (is a, part of) by child id.
    pub parents: HashMap<String, Vec<String>>,
}

impl Ontology {
    /// Read `go_terms.tsv(.gz)` (header `id namespace name definition`) and, if given,
    /// `go_parents.tsv(.gz)` (header `child parent relationship namespace`; only `isa` and
    /// `part of` edges are followed, as CAFA propagates annotations).
    pub fn read(terms: &[u8], parents: Option<&[u8]>) -> Result<Self, ReadError> {
        let text_terms = text(terms, "the GO term file")?;
        let mut map = HashMap::new();
        for (index, raw) in text_terms.lines().enumerate().skip(1) {
            if raw.is_empty() {
                continue;
            }
            let f: Vec<&str> = raw.splitn(4, '\t').collect();
            if f.len() < 3 {
                return Err(tsv_error(
                    index + 1,
                    "expected id, namespace, name, definition".into(),
                ));
            }
            let namespace = Namespace::parse(f[1])
                .ok_or_else(|| tsv_error(index + 1, format!("unknown namespace {:?}", f[1])))?;
            map.insert(
                f[0].to_string(),
                GoTerm {
                    id: f[0].to_string(),
                    namespace,
                    name: f[2].to_string(),
                    definition: f.get(3).unwrap_or(&"").to_string(),
                },
            );
        }
        if map.is_empty() {
            return Err(ReadError::NotStructure(
                "the GO term file has no terms".into(),
            ));
        }
        let mut edges: HashMap<String, Vec<String>> = HashMap::new();
        if let Some(parents) = parents {
            let text_parents = text(parents, "the GO parent file")?;
            for (index, raw) in text_parents.lines().enumerate().skip(1) {
                let f: Vec<&str> = raw.split('\t').collect();
                if f.len() < 3 {
                    return Err(tsv_error(
                        index + 1,
                        "expected child, parent, relationship".into(),
                    ));
                }
                if f[2] == "isa" || f[2] == "part of" || f[2] == "part_of" {
                    edges
                        .entry(f[0].to_string())
                        .or_default()
                        .push(f[1].to_string());
                }
            }
        }
        Ok(Self {
            terms: map,
            parents: edges,
        })
    }

    /// The terms and all their ancestors in the same namespace (the root included).
    pub fn propagate<'a, I: IntoIterator<Item = &'a String>>(&self, terms: I) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut stack: Vec<String> = terms.into_iter().cloned().collect();
        while let Some(t) = stack.pop() {
            if !out.insert(t.clone()) {
                continue;
            }
            let namespace = self.terms.get(&t).map(|x| x.namespace);
            for p in self.parents.get(&t).into_iter().flatten() {
                let same = self.terms.get(p).map(|x| x.namespace);
                if same == namespace && !out.contains(p) {
                    stack.push(p.clone());
                }
            }
        }
        out
    }

    /// Predicted term scores made consistent with the ontology: keep the `k` best-scored
    /// terms, give every ancestor the best score below it, and leave out the molecular-function
    /// root (every protein has it; CAFA's Fmax does not count it).
    pub fn propagate_scores(&self, scores: Vec<(String, f32)>, k: usize) -> HashMap<String, f32> {
        let mut top = scores;
        top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(k);
        let mut out: HashMap<String, f32> = HashMap::new();
        for (term, s) in top {
            for t in self.propagate(std::iter::once(&term)) {
                let e = out.entry(t).or_insert(s);
                *e = e.max(s);
            }
        }
        out.remove(MF_ROOT);
        out
    }

    /// The name of a term, or its id when unknown.
    pub fn name<'a>(&'a self, id: &'a str) -> &'a str {
        self.terms.get(id).map(|t| t.name.as_str()).unwrap_or(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TERMS: &str = "id\tnamespace\tname\tdefinition\n\
        GO:0003674\tmolecular_function\tmolecular_function\tA function.\n\
        GO:0003824\tmolecular_function\tcatalytic activity\tCatalysis.\n\
        GO:0016787\tmolecular_function\thydrolase activity\tHydrolysis.\n\
        GO:0008150\tbiological_process\tbiological_process\t\n";
    const PARENTS: &str = "child\tparent\trelationship\tnamespace\n\
        GO:0016787\tGO:0003824\tisa\tmolecular_function\n\
        GO:0003824\tGO:0003674\tisa\tmolecular_function\n\
        GO:0003824\tGO:0008150\tregulates\tmolecular_function\n";

    #[test]
    fn propagation_follows_isa_within_a_namespace() {
        let o = Ontology::read(TERMS.as_bytes(), Some(PARENTS.as_bytes())).expect("reads");
        let p = o.propagate(&["GO:0016787".to_string()]);
        let want: BTreeSet<String> = ["GO:0003674", "GO:0003824", "GO:0016787"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(p, want);
        assert_eq!(o.name("GO:0016787"), "hydrolase activity");
        assert_eq!(o.name("GO:9999999"), "GO:9999999");
    }

    #[test]
    fn terms_missing_from_the_term_file_are_dropped() {
        let o = Ontology::read(TERMS.as_bytes(), None).expect("reads");
        let mut a = Annotation {
            function: ["GO:0003824", "GO:0004871"].map(String::from).to_vec(),
            process: vec!["GO:0008150".into(), "GO:0000000".into()],
            ..Default::default()
        };
        assert_eq!(a.retain_known(&o), 2);
        assert_eq!(a.function, vec!["GO:0003824"]);
        assert_eq!(a.process, vec!["GO:0008150"]);
        assert_eq!(a.retain_known(&o), 0);
    }

    #[test]
    fn readers_name_bad_lines() {
        assert!(read_function_jsonl(b"").is_err());
        let e = read_function_jsonl(b"{\"name\":\"x\",\"go\":{}}\nnot json\n").expect_err("bad");
        assert!(e.to_string().contains('2'), "{e}");
        let s = read_swissprot_tsv(b"accession\tMFO\tBPO\tCCO\tsequence\nP1\tGO:2,GO:1\t\t\tMKV\n")
            .expect("reads");
        assert_eq!(s[0].function, vec!["GO:1", "GO:2"]);
        assert_eq!(s[0].sequence.as_deref(), Some("MKV"));
        assert!(read_swissprot_tsv(b"wrong header\n").is_err());
    }
}

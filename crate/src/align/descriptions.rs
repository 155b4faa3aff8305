//! Function descriptions from GO annotations and EC numbers.
//!
//! Align-Pro had an LLM rewrite the formulaic annotations into varied sentences; we use templates
//! over the GO term names (and, in some phrasings, a GO definition or the EC numbers) instead.
//! [`query_text`] is the one canonical description of a molecular-function set, used as the
//! text query in evaluation and for the bank's "likely function"; [`phrasings`] gives the
//! training variants.

use super::data::{Annotation, Ontology};

/// GO terms named in one description at most (the text encoder reads 256 tokens).
pub const MAX_TERMS: usize = 8;

/// The root terms, which say nothing.
const ROOTS: [&str; 3] = ["GO:0003674", "GO:0008150", "GO:0005575"];

/// The names of the informative terms, in the given order, at most [`MAX_TERMS`].
pub fn term_names(ontology: &Ontology, ids: &[String]) -> Vec<String> {
    ids.iter()
        .filter(|id| !ROOTS.contains(&id.as_str()))
        .map(|id| ontology.name(id).to_string())
        .take(MAX_TERMS)
        .collect()
}

/// `a`, `a and b`, `a, b and c`.
pub fn join_names(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The canonical text of a molecular-function set: its term names, `; `-separated (empty when
/// the set names no informative term).
pub fn query_text(ontology: &Ontology, function: &[String]) -> String {
    term_names(ontology, function).join("; ")
}

/// A small deterministic hash (FNV-1a) used to pick phrasings reproducibly.
fn fnv(s: &str, salt: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ salt;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A training description and the facts it states (GO ids, `EC:` numbers): a protein is
/// described by it when it has all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrasing {
    pub text: String,
    pub facts: Vec<String>,
}

/// Every fact a protein has: its GO terms (all namespaces) and `EC:` numbers, sorted.
pub fn facts(a: &Annotation) -> Vec<String> {
    let mut f: Vec<String> = a
        .function
        .iter()
        .chain(&a.process)
        .chain(&a.component)
        .cloned()
        .chain(a.ec.iter().map(|e| format!("EC:{e}")))
        .collect();
    f.sort();
    f.dedup();
    f
}

fn informative(ids: &[String]) -> Vec<String> {
    ids.iter()
        .filter(|id| !ROOTS.contains(&id.as_str()))
        .take(MAX_TERMS)
        .cloned()
        .collect()
}

/// Up to `n` distinct descriptions of a protein for training: the canonical text first, one of
/// its function terms alone (as zero-shot term prediction asks), then templated sentences
/// (function, process, EC numbers, one GO definition). Empty when the protein has no informative
/// molecular-function or process term.
pub fn phrasings(ontology: &Ontology, a: &Annotation, n: usize) -> Vec<Phrasing> {
    let mf_ids = informative(&a.function);
    let bp_ids = informative(&a.process);
    let cc_ids = informative(&a.component);
    let mf = term_names(ontology, &a.function);
    let bp = term_names(ontology, &a.process);
    let cc = term_names(ontology, &a.component);
    if mf.is_empty() && bp.is_empty() {
        return Vec::new();
    }
    let ec: Vec<String> = a.ec.iter().map(|e| format!("EC:{e}")).collect();
    let cat = |parts: &[&[String]]| parts.concat();
    let mut out: Vec<Phrasing> = Vec::new();
    let salt = fnv(&a.name, 0);
    if !mf.is_empty() {
        out.push(Phrasing {
            text: mf.join("; "),
            facts: mf_ids.clone(),
        });
        // One function term alone (what zero-shot term prediction compares with).
        let k = (salt as usize) % mf.len();
        if mf.len() > 1 {
            out.push(Phrasing {
                text: mf[k].clone(),
                facts: vec![mf_ids[k].clone()],
            });
        }
    }
    let mut candidates: Vec<Phrasing> = Vec::new();
    let mut add = |text: String, facts: Vec<String>| candidates.push(Phrasing { text, facts });
    if !mf.is_empty() {
        let m = join_names(&mf);
        add(format!("A protein with {m}."), mf_ids.clone());
        add(format!("Molecular function: {m}."), mf_ids.clone());
        add(format!("This protein has {m}."), mf_ids.clone());
        if !bp.is_empty() {
            let b = bp.len().min(3);
            add(
                format!("A protein with {m}, involved in {}.", join_names(&bp[..b])),
                cat(&[&mf_ids, &bp_ids[..b]]),
            );
        }
        if let Some((id, def)) = mf_ids
            .iter()
            .filter_map(|id| Some((id, ontology.terms.get(id)?)))
            .find(|(_, t)| !t.definition.is_empty())
        {
            add(
                format!("{}: {}", capitalise(&def.name), def.definition),
                vec![id.clone()],
            );
        }
    }
    if !bp.is_empty() {
        add(format!("Involved in {}.", join_names(&bp)), bp_ids.clone());
    }
    if !a.ec.is_empty() {
        let e = a.ec.join(", ");
        match (mf.first(), mf_ids.first()) {
            (Some(f), Some(id)) => add(
                format!("An enzyme (EC {e}) with {f}."),
                cat(&[&ec, std::slice::from_ref(id)]),
            ),
            _ => add(format!("An enzyme, EC {e}."), ec.clone()),
        }
    }
    if !cc.is_empty() && !mf.is_empty() {
        let c = cc.len().min(2);
        add(
            format!(
                "{} Found in the {}.",
                capitalise(&join_names(&mf)),
                join_names(&cc[..c])
            ),
            cat(&[&mf_ids, &cc_ids[..c]]),
        );
    }
    // A reproducible order per protein, so that different proteins use different templates.
    candidates.sort_by_key(|c| fnv(&c.text, salt));
    for c in candidates {
        if out.len() >= n {
            break;
        }
        if !out.iter().any(|o| o.text == c.text) {
            out.push(c);
        }
    }
    out.truncate(n);
    for p in &mut out {
        p.facts.sort();
        p.facts.dedup();
    }
    out
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::data::Ontology;

    fn ontology() -> Ontology {
        let terms = "id\tnamespace\tname\tdefinition\n\
            GO:0003674\tmolecular_function\tmolecular_function\t\n\
            GO:0003677\tmolecular_function\tDNA binding\tAny molecular function by which a gene product interacts selectively with DNA.\n\
            GO:0046872\tmolecular_function\tmetal ion binding\t\n\
            GO:0006281\tbiological_process\tDNA repair\t\n";
        Ontology::read(terms.as_bytes(), None).expect("reads")
    }

    #[test]
    fn canonical_text_skips_roots_and_keeps_order() {
        let o = ontology();
        let ids = ["GO:0003674", "GO:0003677", "GO:0046872"].map(String::from);
        assert_eq!(query_text(&o, &ids), "DNA binding; metal ion binding");
        assert_eq!(query_text(&o, &["GO:0003674".to_string()]), "");
    }

    #[test]
    fn phrasings_are_distinct_reproducible_and_bounded() {
        let o = ontology();
        let a = Annotation {
            name: "1ABC_A_1".into(),
            function: ["GO:0003677", "GO:0046872"].map(String::from).to_vec(),
            process: vec!["GO:0006281".into()],
            ec: vec!["3.1.21.1".into()],
            ..Default::default()
        };
        let p = phrasings(&o, &a, 4);
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].text, "DNA binding; metal ion binding");
        assert_eq!(p[0].facts, vec!["GO:0003677", "GO:0046872"]);
        let mut unique: Vec<&str> = p.iter().map(|x| x.text.as_str()).collect();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 4);
        assert_eq!(p, phrasings(&o, &a, 4));
        // Every fact a text states is one the protein has.
        let all = facts(&a);
        for x in phrasings(&o, &a, 20) {
            assert!(x.facts.iter().all(|f| all.contains(f)), "{x:?}");
        }
        assert!(all.contains(&"EC:3.1.21.1".to_string()));
        assert!(phrasings(&o, &Annotation::default(), 3).is_empty());
        assert_eq!(
            join_names(&["a".into(), "b".into(), "c".into()]),
            "a, b and c"
        );
    }
}

//! Residue names: three-letter codes to one letter, with common modified residues mapped to
//! their parent amino acid (as the wwPDB Chemical Component Dictionary's
//! `mon_nstd_parent_comp_id` does) and everything else to `X`.

/// The 20 standard amino acids in the one-hot order of the reference model (§2).
pub const AMINO_ACIDS: &str = "ACDEFGHIKLMNPQRSTVWY";

const STANDARD: [(&str, char); 20] = [
    ("ALA", 'A'),
    ("CYS", 'C'),
    ("ASP", 'D'),
    ("GLU", 'E'),
    ("PHE", 'F'),
    ("GLY", 'G'),
    ("HIS", 'H'),
    ("ILE", 'I'),
    ("LYS", 'K'),
    ("LEU", 'L'),
    ("MET", 'M'),
    ("ASN", 'N'),
    ("PRO", 'P'),
    ("GLN", 'Q'),
    ("ARG", 'R'),
    ("SER", 'S'),
    ("THR", 'T'),
    ("VAL", 'V'),
    ("TRP", 'W'),
    ("TYR", 'Y'),
];

/// Frequent modified residues of the PDB and their parents (CCD `mon_nstd_parent_comp_id`).
const MODIFIED: [(&str, char); 38] = [
    ("MSE", 'M'), // selenomethionine
    ("FME", 'M'), // N-formylmethionine
    ("MHO", 'M'), // S-oxymethionine
    ("SEP", 'S'), // phosphoserine
    ("TPO", 'T'), // phosphothreonine
    ("PTR", 'Y'), // phosphotyrosine
    ("TYS", 'Y'), // sulfotyrosine
    ("CSO", 'C'), // S-hydroxycysteine
    ("CSD", 'C'), // 3-sulfinoalanine
    ("CME", 'C'), // S,S-(2-hydroxyethyl)thiocysteine
    ("OCS", 'C'), // cysteinesulfonic acid
    ("CSX", 'C'), // S-oxy cysteine
    ("CAS", 'C'), // S-(dimethylarsenic)cysteine
    ("SEC", 'C'), // selenocysteine
    ("SCH", 'C'), // S-methyl-thio-cysteine
    ("CSS", 'C'), // S-mercaptocysteine
    ("HYP", 'P'), // 4-hydroxyproline
    ("MLY", 'K'), // N-dimethyl-lysine
    ("M3L", 'K'), // N-trimethyllysine
    ("MLZ", 'K'), // N-methyl-lysine
    ("KCX", 'K'), // lysine NZ-carboxylic acid
    ("LLP", 'K'), // lysine-pyridoxal-5'-phosphate
    ("ALY", 'K'), // N(6)-acetyllysine
    ("PYL", 'K'), // pyrrolysine
    ("HIC", 'H'), // 4-methyl-histidine
    ("NEP", 'H'), // N1-phosphonohistidine
    ("HSD", 'H'), // CHARMM histidine names
    ("HSE", 'H'),
    ("HSP", 'H'),
    ("HIE", 'H'), // AMBER histidine names
    ("HID", 'H'),
    ("HIP", 'H'),
    ("CGU", 'E'), // gamma-carboxy-glutamic acid
    ("PCA", 'Q'), // pyroglutamic acid
    ("MEN", 'N'), // N-methyl asparagine
    ("DAL", 'A'), // D-alanine
    ("AIB", 'A'), // alpha-aminoisobutyric acid
    ("CYX", 'C'), // AMBER disulfide cysteine
];

/// One-letter code of a residue name: the standard 20, the modified residues above mapped to
/// their parent, `None` for anything else (the caller decides whether it is `X` or no amino acid).
pub fn one_letter(name: &str) -> Option<char> {
    let name = name.trim();
    STANDARD
        .iter()
        .chain(MODIFIED.iter())
        .find(|(code, _)| code.eq_ignore_ascii_case(name))
        .map(|&(_, letter)| letter)
}

/// Whether `name` is one of the modified residues mapped to a parent.
pub fn is_modified(name: &str) -> bool {
    MODIFIED
        .iter()
        .any(|(code, _)| code.eq_ignore_ascii_case(name.trim()))
}

/// Three-letter name of a one-letter code (`UNK` for anything outside the standard 20).
pub fn three_letter(letter: char) -> &'static str {
    STANDARD
        .iter()
        .find(|&&(_, l)| l == letter.to_ascii_uppercase())
        .map(|&(code, _)| code)
        .unwrap_or("UNK")
}

/// Index of a one-letter code in [`AMINO_ACIDS`] (`None` for `X` and other letters).
pub fn amino_acid_index(letter: char) -> Option<usize> {
    AMINO_ACIDS.find(letter.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_modified_names() {
        assert_eq!(one_letter("ALA"), Some('A'));
        assert_eq!(one_letter("tyr"), Some('Y'));
        assert_eq!(one_letter("MSE"), Some('M'));
        assert_eq!(one_letter("SEP"), Some('S'));
        assert_eq!(one_letter("HOH"), None);
        assert_eq!(one_letter("UNK"), None);
        assert!(is_modified("MSE") && !is_modified("MET"));
        for (code, letter) in STANDARD {
            assert_eq!(three_letter(letter), code);
        }
        assert_eq!(three_letter('X'), "UNK");
        assert_eq!(amino_acid_index('A'), Some(0));
        assert_eq!(amino_acid_index('Y'), Some(19));
        assert_eq!(amino_acid_index('X'), None);
    }
}

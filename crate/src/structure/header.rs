//! The descriptive text of a structure file (pdbtbx does not keep it) and checks for files
//! that were cut short. PDB: TITLE, COMPND and KEYWDS records. mmCIF: `_struct.title`,
//! `_struct_keywords.text` / `pdbx_keywords` and `_entity.pdbx_description`, read by a
//! small CIF 1.1 tokenizer that also tells whether the file ends inside a loop row or a text
//! field.

use serde::{Deserialize, Serialize};

/// Descriptive text of a structure file. Shown to users as plain text, never as markup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Description {
    /// PDB TITLE or mmCIF `_struct.title`.
    pub title: Option<String>,
    /// PDB KEYWDS or mmCIF `_struct_keywords.text` (falling back to `pdbx_keywords`).
    pub keywords: Option<String>,
    /// Molecule names: PDB `COMPND MOLECULE:` or mmCIF `_entity.pdbx_description`.
    pub molecules: Vec<String>,
}

impl Description {
    /// Whether the text says the structure is a prediction (AlphaFold and similar), in which
    /// case the B-factor column holds pLDDT.
    pub fn mentions_prediction(&self) -> bool {
        let all = [self.title.as_deref(), self.keywords.as_deref()];
        all.iter().flatten().any(|t| {
            let t = t.to_ascii_uppercase();
            t.contains("ALPHAFOLD") || t.contains("PREDICTED MODEL") || t.contains("ESMFOLD")
        })
    }
}

fn clean(text: &str) -> Option<String> {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let joined = joined
        .trim_matches(|c| c == '\'' || c == '"')
        .trim()
        .to_string();
    (!joined.is_empty() && joined != "?" && joined != ".").then_some(joined)
}

/// Description from the records of a PDB file.
pub fn pdb_description(text: &str) -> Description {
    let mut title = String::new();
    let mut keywords = String::new();
    let mut compnd = String::new();
    for line in text.lines() {
        let rest = line.get(10..).unwrap_or("").trim_end();
        if line.starts_with("TITLE ") {
            title.push(' ');
            title.push_str(rest);
        } else if line.starts_with("KEYWDS") {
            keywords.push(' ');
            keywords.push_str(rest);
        } else if line.starts_with("COMPND") {
            compnd.push(' ');
            compnd.push_str(rest);
        } else if line.starts_with("ATOM  ") || line.starts_with("HETATM") {
            break;
        }
    }
    let molecules = compnd
        .split(';')
        .filter_map(|spec| spec.trim().strip_prefix("MOLECULE:"))
        .filter_map(clean)
        .collect();
    Description {
        title: clean(&title),
        keywords: clean(&keywords),
        molecules,
    }
}

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Word(&'a str),
    Quoted(&'a str),
}

impl<'a> Token<'a> {
    fn text(&self) -> &'a str {
        match self {
            Token::Word(s) | Token::Quoted(s) => s,
        }
    }
    fn is_tag(&self) -> bool {
        matches!(self, Token::Word(s) if s.starts_with('_'))
    }
    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self, Token::Word(s) if s.get(..kw.len()).is_some_and(|p| p.eq_ignore_ascii_case(kw)))
    }
}

/// A CIF file ended inside something that must be closed.
#[derive(Debug, Clone, PartialEq)]
pub struct Unterminated(pub String);

fn tokenize(text: &str) -> Result<Vec<Token<'_>>, Unterminated> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut line_start = true;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\n' {
            line_start = true;
            i += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            line_start = false;
            continue;
        }
        if c == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b';' && line_start {
            // Text field: up to a line that starts with ';'.
            let start = i + 1;
            let Some(k) = text[start..].find("\n;") else {
                return Err(Unterminated(
                    "a ';' text field is not closed before the end of the file".into(),
                ));
            };
            tokens.push(Token::Quoted(&text[start..start + k]));
            i = start + k + 2;
            line_start = false;
            continue;
        }
        if c == b'\'' || c == b'"' {
            // Quoted string: ends at the same quote followed by whitespace or the end.
            let start = i + 1;
            let mut j = start;
            let mut closed = None;
            while j < bytes.len() {
                if bytes[j] == b'\n' {
                    break;
                }
                if bytes[j] == c && (j + 1 == bytes.len() || bytes[j + 1].is_ascii_whitespace()) {
                    closed = Some(j);
                    break;
                }
                j += 1;
            }
            match closed {
                Some(end) => {
                    tokens.push(Token::Quoted(&text[start..end]));
                    i = end + 1;
                }
                None => {
                    // An unclosed quote on one line is taken as a bare word (CIF 1.1 leniency).
                    let end = j;
                    tokens.push(Token::Word(&text[i..end]));
                    i = end;
                }
            }
            line_start = false;
            continue;
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        tokens.push(Token::Word(&text[start..i]));
        line_start = false;
    }
    Ok(tokens)
}

/// The loop starting at `tokens[i]` (the `loop_` keyword): its tags, the range of its values
/// in `tokens`, and the index after it.
fn read_loop(tokens: &[Token<'_>], mut i: usize) -> (Vec<String>, std::ops::Range<usize>, usize) {
    i += 1;
    let mut tags = Vec::new();
    while i < tokens.len() && tokens[i].is_tag() {
        tags.push(tokens[i].text().to_string());
        i += 1;
    }
    let start = i;
    while i < tokens.len()
        && !tokens[i].is_tag()
        && !tokens[i].is_keyword("loop_")
        && !tokens[i].is_keyword("data_")
    {
        i += 1;
    }
    (tags, start..i, i)
}

/// Description of an mmCIF file, or an error if the file ends inside a loop row or a text field.
pub fn cif_description(text: &str) -> Result<Description, Unterminated> {
    let tokens = tokenize(text)?;
    let mut items: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        if t.is_keyword("loop_") {
            let (tags, range, next) = read_loop(&tokens, i);
            let tags: Vec<String> = tags.iter().map(|t| t.to_ascii_lowercase()).collect();
            i = next;
            let values = &tokens[range];
            if tags.is_empty() {
                continue;
            }
            if !values.len().is_multiple_of(tags.len()) {
                return Err(Unterminated(format!(
                    "the loop of {} ends in the middle of a row ({} values for {} columns)",
                    tags[0].split('.').next().unwrap_or("?"),
                    values.len(),
                    tags.len()
                )));
            }
            for row in values.chunks(tags.len()) {
                for (tag, value) in tags.iter().zip(row) {
                    if is_wanted(tag) {
                        items.push((tag.clone(), value.text().to_string()));
                    }
                }
            }
        } else if t.is_tag() {
            let tag = t.text().to_ascii_lowercase();
            match tokens.get(i + 1) {
                Some(v) if !v.is_tag() && !v.is_keyword("loop_") => {
                    if is_wanted(&tag) {
                        items.push((tag, v.text().to_string()));
                    }
                    i += 2;
                }
                _ => {
                    if i + 1 == tokens.len() {
                        return Err(Unterminated(format!("{tag} has no value")));
                    }
                    i += 1;
                }
            }
        } else {
            i += 1;
        }
    }
    let get = |tag: &str| {
        items
            .iter()
            .find(|(t, _)| t == tag)
            .and_then(|(_, v)| clean(v))
    };
    Ok(Description {
        title: get("_struct.title"),
        keywords: get("_struct_keywords.text").or_else(|| get("_struct_keywords.pdbx_keywords")),
        molecules: items
            .iter()
            .filter(|(t, _)| t == "_entity.pdbx_description")
            .filter_map(|(_, v)| clean(v))
            .collect(),
    })
}

fn is_wanted(tag: &str) -> bool {
    matches!(
        tag,
        "_struct.title"
            | "_struct_keywords.text"
            | "_struct_keywords.pdbx_keywords"
            | "_entity.pdbx_description"
    )
}

/// The `atom_site` loop of an mmCIF file re-emitted alone, as a minimal CIF with plain tokens,
/// after checking every value pdbtbx requires (it panics on a missing or malformed one). Other
/// categories are dropped: our own pass reads the descriptive ones, and pdbtbx panics on some
/// malformed ones (unit cell, symmetry) that we do not use.
pub fn cif_atom_site_only(text: &str) -> Result<String, String> {
    let tokens = tokenize(text).map_err(|Unterminated(why)| why)?;
    let mut tags: Vec<String> = Vec::new();
    let mut values: Vec<&Token<'_>> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i].is_keyword("loop_") {
            let (loop_tags, range, next) = read_loop(&tokens, i);
            i = next;
            if loop_tags
                .first()
                .is_some_and(|t| t.to_ascii_lowercase().starts_with("_atom_site."))
            {
                tags = loop_tags;
                values = tokens[range].iter().collect();
                break;
            }
        } else {
            i += 1;
        }
    }
    if tags.is_empty() {
        return Err("the file has no atom_site loop (no atomic coordinates)".into());
    }
    if !values.len().is_multiple_of(tags.len()) {
        return Err("the atom_site loop ends in the middle of a row".into());
    }
    let lower: Vec<String> = tags.iter().map(|t| t.to_ascii_lowercase()).collect();
    let column = |name: &str| lower.iter().position(|t| t == name);
    const REQUIRED: [&str; 8] = [
        "_atom_site.id",
        "_atom_site.label_atom_id",
        "_atom_site.label_comp_id",
        "_atom_site.label_asym_id",
        "_atom_site.label_seq_id",
        "_atom_site.type_symbol",
        "_atom_site.cartn_x",
        "_atom_site.cartn_y",
    ];
    let mut required = Vec::new();
    for name in REQUIRED.iter().chain(["_atom_site.cartn_z"].iter()) {
        required
            .push(column(name).ok_or_else(|| format!("the atom_site loop has no {name} column"))?);
    }
    let auth_chain = column("_atom_site.auth_asym_id");
    let occupancy = column("_atom_site.occupancy");
    let plain = |t: &str| {
        !t.is_empty()
            && t.bytes().all(|b| b.is_ascii_graphic())
            && !t.starts_with(['_', '#', '$', '\'', '"', ';', '[', ']'])
            && !["loop_", "data_", "save_", "global_", "stop_"]
                .iter()
                .any(|k| t.get(..k.len()).is_some_and(|p| p.eq_ignore_ascii_case(k)))
    };
    let missing = |t: &str| t == "?" || t == ".";
    // pdbtbx accumulates each run of digits of a number in a u32 (overflow beyond 9 digits).
    let long_digits = |t: &str| {
        t.split(|c: char| !c.is_ascii_digit())
            .any(|run| run.len() > 9)
    };
    let mut out = String::with_capacity(text.len() / 2);
    out.push_str("data_foldspace\nloop_\n");
    for tag in &tags {
        out.push_str(tag);
        out.push('\n');
    }
    for (r, row) in values.chunks(tags.len()).enumerate() {
        let bad = |what: &str| format!("atom_site row {}: {what}", r + 1);
        for (k, &col) in required.iter().enumerate() {
            let v = row[col].text();
            let name = if k < REQUIRED.len() {
                REQUIRED[k]
            } else {
                "_atom_site.cartn_z"
            };
            match name {
                "_atom_site.id" if v.parse::<usize>().is_err() => {
                    return Err(bad("the atom id is not a number"));
                }
                "_atom_site.cartn_x" | "_atom_site.cartn_y" | "_atom_site.cartn_z"
                    if v.parse::<f64>().map_or(true, |x| !x.is_finite()) || long_digits(v) =>
                {
                    return Err(bad("a coordinate is not a number"));
                }
                "_atom_site.label_seq_id" => {}
                "_atom_site.label_asym_id"
                    if auth_chain.is_some_and(|c| !missing(row[c].text())) => {}
                _ if missing(v) || !plain(v) => {
                    return Err(bad(&format!("{} is missing or malformed", &name[11..])));
                }
                _ => {}
            }
        }
        for (col, v) in row.iter().enumerate() {
            let t = v.text();
            let number = t.parse::<f64>().ok();
            let unusable = !plain(t)
                || long_digits(t)
                || number.is_some_and(|x| !x.is_finite())
                || (Some(col) == occupancy && number.is_none_or(|x| x < 0.0));
            out.push_str(if unusable { "?" } else { t });
            out.push(' ');
        }
        out.push('\n');
    }
    Ok(out)
}

/// Whether a PDB file was cut inside a coordinate record: its last ATOM/HETATM line is too
/// short to hold the three coordinates (columns 31–54).
pub fn pdb_truncated(text: &str) -> Option<String> {
    let last = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let is_coord = last.starts_with("ATOM") || last.starts_with("HETATM");
    (is_coord && last.trim_end().len() < 54).then(|| {
        format!(
            "the last line is an incomplete atom record ({} characters, coordinates need 54)",
            last.trim_end().len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdb_text() {
        let text = "HEADER    HYDROLASE                               01-JAN-00   1ABC\n\
TITLE     CRYSTAL STRUCTURE OF A\n\
TITLE    2 PROTEASE\n\
COMPND    MOL_ID: 1;\n\
COMPND   2 MOLECULE: PROTEASE <B>X</B>;\n\
COMPND   3 CHAIN: A\n\
KEYWDS    HYDROLASE, ZINC\n\
ATOM      1  CA  ALA A   1      11.104  13.207   2.100  1.00 20.00           C\n";
        let d = pdb_description(text);
        assert_eq!(d.title.as_deref(), Some("CRYSTAL STRUCTURE OF A PROTEASE"));
        assert_eq!(d.keywords.as_deref(), Some("HYDROLASE, ZINC"));
        assert_eq!(d.molecules, vec!["PROTEASE <B>X</B>".to_string()]);
        assert!(pdb_truncated(text).is_none());
        assert!(pdb_truncated("ATOM      1  CA  ALA A   1      11.104  13.2").is_some());
    }

    #[test]
    fn non_ascii_tokens() {
        // Found by fuzzing: a multi-byte character where a keyword prefix was sliced.
        assert!(cif_description("data_x\n\u{fffd}\u{fffd}TATM 1\n").is_ok());
        assert!(cif_atom_site_only("\u{fffd}\u{fffd}oop_ x").is_err());
        // Found by fuzzing: pdbtbx overflows a u32 on runs of more than 9 digits.
        let cif = "data_x\nloop_\n_atom_site.id\n_atom_site.label_atom_id\n_atom_site.label_comp_id\n\
_atom_site.label_asym_id\n_atom_site.label_seq_id\n_atom_site.type_symbol\n_atom_site.Cartn_x\n\
_atom_site.Cartn_y\n_atom_site.Cartn_z\n_atom_site.B_iso_or_equiv\n\
1 CA ALA A 1 C 1.0 2.0 3.0 123456789012\n";
        let minimal = cif_atom_site_only(cif).expect("valid apart from the B-factor");
        assert!(minimal.ends_with("3.0 ? \n"), "{minimal}");
        let bad = cif.replace("1.0 2.0", "12345678901.5 2.0");
        assert!(cif_atom_site_only(&bad).is_err());
    }

    #[test]
    fn cif_text_and_truncation() {
        let text = "data_1ABC\n_struct.title 'A title with spaces'\n\
_struct_keywords.pdbx_keywords HYDROLASE\n\
loop_\n_entity.id\n_entity.type\n_entity.pdbx_description\n\
1 polymer 'Protease one'\n2 water water\n\
_struct_keywords.text\n;HYDROLASE, ZINC\n;\n";
        let d = cif_description(text).expect("valid");
        assert_eq!(d.title.as_deref(), Some("A title with spaces"));
        assert_eq!(d.keywords.as_deref(), Some("HYDROLASE, ZINC"));
        assert_eq!(d.molecules, vec!["Protease one", "water"]);
        let cut = "data_x\nloop_\n_atom_site.id\n_atom_site.x\n1 2.0\n2";
        assert!(cif_description(cut).is_err());
        assert!(cif_description("data_x\n_struct.title\n;never closed\n").is_err());
    }
}

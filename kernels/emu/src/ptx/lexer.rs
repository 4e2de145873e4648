//! PTX text -> tokens. One pass over the bytes, no allocation per token: a token is a slice of
//! the source plus its 1-based line and byte span (the parser uses the span to keep each
//! instruction's text).
//!
//! Token classes:
//! - `Word`: a maximal run of `[A-Za-z0-9_$%.]`, which may contain `::` between word characters.
//!   Directives (`.reg`), opcodes with their modifiers (`ld.global.nc.v4.u32`,
//!   `cp.async.bulk.shared::cluster`), registers (`%r1`, `%tid.x`), identifiers (`$L__BB0_2`),
//!   numbers (`42`, `0x1F`, `0f3F800000`, `1.5`, `1.5e-3`, `9.0`) are all words; the parser tells
//!   them apart.
//! - `Str`: a `"..."` string (contents without the quotes, escapes kept as written).
//! - `Punct`: one of `, ; : { } [ ] ( ) + - < > = @ ! |`.
//!
//! Comments (`// ...` to end of line, `/* ... */`) and whitespace are skipped.

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tok<'a> {
    Word(&'a str),
    Str(&'a str),
    Punct(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token<'a> {
    pub tok: Tok<'a>,
    /// 1-based line of the token's first character.
    pub line: u32,
    /// Byte span in the source.
    pub start: usize,
    pub end: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexError {
    pub line: u32,
    pub message: String,
}

#[inline]
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'%' || b == b'.'
}

const PUNCT: &[u8] = b",;:{}[]()+-<>=@!|";

/// Splits `src` into tokens.
pub fn lex(src: &str) -> Result<Vec<Token<'_>>, LexError> {
    let bytes = src.as_bytes();
    let n = bytes.len();
    // A rough guess (one token per 4 bytes) saves most re-allocations.
    let mut out = Vec::with_capacity(n / 4 + 8);
    let mut i = 0usize;
    let mut line = 1u32;
    while i < n {
        let b = bytes[i];
        match b {
            b'\n' => {
                line = line.saturating_add(1);
                i += 1;
            }
            b' ' | b'\t' | b'\r' | 0x0b | 0x0c => i += 1,
            b'/' if i + 1 < n && bytes[i + 1] == b'/' => {
                i += 2;
                while i < n && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if i + 1 < n && bytes[i + 1] == b'*' => {
                let start_line = line;
                i += 2;
                loop {
                    if i + 1 >= n {
                        return Err(LexError { line: start_line, message: "unterminated block comment `/*`".into() });
                    }
                    if bytes[i] == b'*' && bytes[i + 1] == b'/' {
                        i += 2;
                        break;
                    }
                    if bytes[i] == b'\n' {
                        line = line.saturating_add(1);
                    }
                    i += 1;
                }
            }
            b'"' => {
                let start = i;
                let start_line = line;
                i += 1;
                loop {
                    if i >= n {
                        return Err(LexError { line: start_line, message: "unterminated string literal".into() });
                    }
                    match bytes[i] {
                        b'"' => break,
                        b'\\' if i + 1 < n => {
                            if bytes[i + 1] == b'\n' {
                                line = line.saturating_add(1);
                            }
                            i += 2;
                        }
                        b'\n' => {
                            return Err(LexError {
                                line: start_line,
                                message: "newline inside a string literal".into(),
                            })
                        }
                        _ => i += 1,
                    }
                }
                // bytes[i] == '"'; the slice boundaries sit on ASCII quotes, so they are char
                // boundaries.
                out.push(Token { tok: Tok::Str(&src[start + 1..i]), line: start_line, start, end: i + 1 });
                i += 1;
            }
            _ if is_word_byte(b) => {
                let start = i;
                i += 1;
                loop {
                    if i < n && is_word_byte(bytes[i]) {
                        // A decimal exponent with a sign: `1.5e-3`, `2E+10`.
                        if (bytes[i] == b'e' || bytes[i] == b'E')
                            && bytes[start].is_ascii_digit()
                            && i + 2 < n
                            && (bytes[i + 1] == b'-' || bytes[i + 1] == b'+')
                            && bytes[i + 2].is_ascii_digit()
                            && is_decimal_mantissa(&bytes[start..i])
                        {
                            i += 2;
                        }
                        i += 1;
                    } else if i + 2 < n && bytes[i] == b':' && bytes[i + 1] == b':' && is_word_byte(bytes[i + 2]) {
                        i += 2;
                    } else {
                        break;
                    }
                }
                out.push(Token { tok: Tok::Word(&src[start..i]), line, start, end: i });
            }
            _ if PUNCT.contains(&b) => {
                out.push(Token { tok: Tok::Punct(b), line, start: i, end: i + 1 });
                i += 1;
            }
            _ => {
                let what = if b.is_ascii_graphic() {
                    format!("`{}`", b as char)
                } else {
                    // Show the whole character, not a byte of it.
                    let ch = src[i..].chars().next().unwrap_or('?');
                    format!("{:?}", ch)
                };
                return Err(LexError { line, message: format!("unexpected character {what}") });
            }
        }
    }
    Ok(out)
}

/// `1`, `1.5`, `12.` (digits with at most one dot): the part before a decimal exponent.
fn is_decimal_mantissa(s: &[u8]) -> bool {
    let mut dots = 0;
    for &c in s {
        match c {
            b'0'..=b'9' => {}
            b'.' => dots += 1,
            _ => return false,
        }
    }
    dots <= 1 && !(s.len() >= 2 && s[0] == b'0' && (s[1] == b'x' || s[1] == b'X'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(src: &str) -> Vec<String> {
        lex(src)
            .unwrap()
            .into_iter()
            .map(|t| match t.tok {
                Tok::Word(w) => w.to_string(),
                Tok::Str(s) => format!("\"{s}\""),
                Tok::Punct(p) => (p as char).to_string(),
            })
            .collect()
    }

    #[test]
    fn basic_tokens() {
        assert_eq!(
            words("@!%p1 ld.global.nc.v4.u32 {%r1, _}, [%rd4+-16]; // c\n"),
            [
                "@",
                "!",
                "%p1",
                "ld.global.nc.v4.u32",
                "{",
                "%r1",
                ",",
                "_",
                "}",
                ",",
                "[",
                "%rd4",
                "+",
                "-",
                "16",
                "]",
                ";"
            ]
        );
        assert_eq!(
            words("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes a;"),
            ["cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes", "a", ";"]
        );
        assert_eq!(words("$L__BB0_2:\n"), ["$L__BB0_2", ":"]);
        assert_eq!(words("x 1.5e-3 2E+4 1e5-1"), ["x", "1.5e-3", "2E+4", "1e5", "-", "1"]);
        assert_eq!(words("0x1e-3"), ["0x1e", "-", "3"]);
        assert_eq!(words(".pragma \"nounroll\";"), [".pragma", "\"nounroll\"", ";"]);
    }

    #[test]
    fn lines_and_comments() {
        let t = lex("a /* x\n y */ b\n// c\nd").unwrap();
        let lines: Vec<u32> = t.iter().map(|t| t.line).collect();
        assert_eq!(lines, [1, 2, 4]);
    }

    #[test]
    fn errors() {
        assert_eq!(lex("a\n/* x").unwrap_err().line, 2);
        assert_eq!(lex("\"abc").unwrap_err().line, 1);
        assert!(lex("a # b").unwrap_err().message.contains('#'));
        assert!(lex("a é").is_err());
    }
}

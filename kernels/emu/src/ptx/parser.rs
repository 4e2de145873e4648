//! Tokens -> `ast::Module`. A recursive-descent parser that knows PTX's declaration syntax but
//! nothing about instruction semantics: an instruction is a guard, a dotted opcode and a list of
//! operands, and the decoder gives it meaning.
//!
//! Conventions the decoder relies on (beyond the doc comments in `ast.rs`):
//! - Nested `{ ... }` scopes stay `Statement::Block`; names are not resolved here.
//! - `.param` declarations inside a body (call sequences) are `Statement::Var` with
//!   `StateSpace::Param`.
//! - `call.uni (retval0), fname, (param0, param1);`: each parenthesised list is an
//!   `Operand::Vector` (possibly empty), the callee an `Operand::Name`.
//! - A tensor/texture address `[tmap, {c0, c1}]` is
//!   `Operand::Vector([Address { base: Some(tmap), offset: 0 }, Vector([c0, c1])])`: the only
//!   place an `Address` appears inside a `Vector`.
//! - A decimal float literal (`1.5`, `1e-3`) is `F64` when the instruction has an `f64` modifier
//!   (or the variable being initialised is `.f64`), else `F32` (rounded once from the decimal
//!   text). Hex float literals keep their written width (`0f` -> F32, `0d` -> F64).
//! - `generic(name)` is `Name(name)`; `generic(name)+8` and `name+8` are `SymbolOffset`.
//! - A vector variable (`.global .v4 .f32 x[2]`) gets its vector length as an extra innermost
//!   dimension (`dims == [Some(2), Some(4)]`), so its size stays right.
//! - Unknown directives inside a body (`.callprototype`, `.branchtargets`, ...) become
//!   `Statement::Pragma("name rest-of-text", line)`; `.pragma "x";` becomes `Pragma("x", line)`.
//! - `.loc`, `.file` (to end of line) and `.section ... { ... }` are skipped entirely.
use super::ast::*;
use super::lexer::{lex, Tok, Token};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: u32,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Nesting limit for `{ }` scopes and initialiser braces (a guard against stack exhaustion on
/// hostile input; real PTX nests a handful deep).
const MAX_DEPTH: u32 = 200;

pub fn parse(src: &str) -> Result<Module, ParseError> {
    let toks = lex(src).map_err(|e| ParseError { line: e.line, message: e.message })?;
    let last_line = toks.last().map(|t| t.line).unwrap_or(1);
    let mut p = Parser { src, toks, pos: 0, last_line };
    p.module()
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token<'a>>,
    pos: usize,
    last_line: u32,
}

type PResult<T> = Result<T, ParseError>;

fn describe(t: Option<Token<'_>>) -> String {
    match t {
        None => "end of file".to_string(),
        Some(t) => match t.tok {
            Tok::Word(w) => format!("`{}`", clip(w)),
            Tok::Str(s) => format!("string \"{}\"", clip(s)),
            Tok::Punct(p) => format!("`{}`", p as char),
        },
    }
}

fn clip(s: &str) -> &str {
    if s.len() <= 60 {
        return s;
    }
    let mut end = 60;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl<'a> Parser<'a> {
    // ---- token helpers -------------------------------------------------------------------

    #[inline]
    fn peek(&self) -> Option<Token<'a>> {
        self.toks.get(self.pos).copied()
    }

    #[inline]
    fn peek_at(&self, k: usize) -> Option<Token<'a>> {
        self.toks.get(self.pos + k).copied()
    }

    #[inline]
    fn peek_word(&self) -> Option<&'a str> {
        match self.peek() {
            Some(Token { tok: Tok::Word(w), .. }) => Some(w),
            _ => None,
        }
    }

    #[inline]
    fn is_punct(&self, c: u8) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Punct(p), .. }) if p == c)
    }

    fn eat_punct(&mut self, c: u8) -> bool {
        if self.is_punct(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Line of the current token (or the last line at end of file).
    fn line(&self) -> u32 {
        self.peek().map(|t| t.line).unwrap_or(self.last_line)
    }

    fn err<T>(&self, message: String) -> PResult<T> {
        Err(ParseError { line: self.line(), message })
    }

    fn unexpected<T>(&self, expected: &str) -> PResult<T> {
        self.err(format!("expected {expected}, found {}", describe(self.peek())))
    }

    fn expect_punct(&mut self, c: u8, context: &str) -> PResult<()> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            self.unexpected(&format!("`{}` {context}", c as char))
        }
    }

    fn expect_word(&mut self, what: &str) -> PResult<&'a str> {
        match self.peek_word() {
            Some(w) => {
                self.pos += 1;
                Ok(w)
            }
            None => self.unexpected(what),
        }
    }

    /// An identifier (a name that is neither a directive nor a number).
    fn expect_ident(&mut self, what: &str) -> PResult<&'a str> {
        match self.peek_word() {
            Some(w) if is_ident(w) => {
                self.pos += 1;
                Ok(w)
            }
            _ => self.unexpected(what),
        }
    }

    fn expect_u32(&mut self, what: &str) -> PResult<u32> {
        let line = self.line();
        let w = self.expect_word(what)?;
        match parse_int(w) {
            Some(v) if (0..=u32::MAX as i64).contains(&v) => Ok(v as u32),
            _ => Err(ParseError { line, message: format!("expected {what}, found `{}`", clip(w)) }),
        }
    }

    /// Skips every remaining token on `line`.
    fn skip_line(&mut self, line: u32) {
        while let Some(t) = self.peek() {
            if t.line != line {
                break;
            }
            self.pos += 1;
        }
    }

    /// Skips to just past the next `;` (returns the span end of the `;`).
    fn skip_to_semicolon(&mut self) -> PResult<usize> {
        let line = self.line();
        while let Some(t) = self.peek() {
            self.pos += 1;
            if t.tok == Tok::Punct(b';') {
                return Ok(t.end);
            }
        }
        Err(ParseError { line, message: "missing `;` before end of file".into() })
    }

    /// `.section name ... { ... }`: skips the whole block (balanced braces).
    fn skip_section(&mut self) -> PResult<()> {
        let line = self.line();
        while let Some(t) = self.peek() {
            if t.tok == Tok::Punct(b'{') {
                break;
            }
            if t.tok == Tok::Punct(b';') {
                // `.section name;` without a body.
                self.pos += 1;
                return Ok(());
            }
            self.pos += 1;
        }
        let mut depth = 0u32;
        while let Some(t) = self.peek() {
            self.pos += 1;
            match t.tok {
                Tok::Punct(b'{') => depth += 1,
                Tok::Punct(b'}') => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        Err(ParseError { line, message: "unterminated `.section` block".into() })
    }

    // ---- module --------------------------------------------------------------------------

    fn module(&mut self) -> PResult<Module> {
        let mut m = Module::default();
        let mut linkage: Vec<String> = Vec::new();
        let mut linkage_line = 0;
        while let Some(tok) = self.peek() {
            let line = tok.line;
            let w = match tok.tok {
                Tok::Word(w) => w,
                _ => return self.unexpected("a directive at module scope"),
            };
            match w {
                ".version" => {
                    self.pos += 1;
                    let v = self.expect_word("a version number like 8.4")?;
                    m.version = parse_version(v)
                        .ok_or_else(|| ParseError { line, message: format!("bad `.version` `{}`", clip(v)) })?;
                }
                ".target" => {
                    self.pos += 1;
                    m.target.push(self.expect_ident("a target name")?.to_string());
                    while self.eat_punct(b',') {
                        m.target.push(self.expect_ident("a target name")?.to_string());
                    }
                }
                ".address_size" => {
                    self.pos += 1;
                    m.address_size = self.expect_u32("an address size")?;
                }
                ".file" | ".loc" => {
                    self.pos += 1;
                    self.skip_line(line);
                }
                ".section" => self.skip_section()?,
                ".pragma" => {
                    self.skip_to_semicolon()?;
                }
                ".visible" | ".weak" | ".extern" | ".common" => {
                    self.pos += 1;
                    if linkage.is_empty() {
                        linkage_line = line;
                    }
                    linkage.push(w[1..].to_string());
                }
                ".entry" | ".func" => {
                    let f = self.function(std::mem::take(&mut linkage))?;
                    m.functions.push(f);
                }
                ".global" | ".const" | ".shared" | ".local" | ".shared::cta" => {
                    let is_extern = linkage.iter().any(|l| l == "extern");
                    linkage.clear();
                    self.var_decls(is_extern, &mut m.vars)?;
                }
                _ => return self.unexpected("a directive at module scope (`.entry`, `.func`, `.global`, ...)"),
            }
            if !linkage.is_empty() && !matches!(w, ".visible" | ".weak" | ".extern" | ".common") {
                return Err(ParseError {
                    line: linkage_line,
                    message: "linkage directive not followed by a declaration".into(),
                });
            }
        }
        if !linkage.is_empty() {
            return Err(ParseError { line: linkage_line, message: "linkage directive at end of file".into() });
        }
        Ok(m)
    }

    // ---- functions -----------------------------------------------------------------------

    fn function(&mut self, linkage: Vec<String>) -> PResult<Function> {
        let line = self.line();
        let kw = self.expect_word("`.entry` or `.func`")?;
        let is_entry = kw == ".entry";
        let mut returns = Vec::new();
        if !is_entry && self.is_punct(b'(') {
            returns = self.param_list()?;
        }
        let name = self.expect_ident("a function name")?.to_string();
        let mut params = Vec::new();
        if self.is_punct(b'(') {
            params = self.param_list()?;
        }
        let mut directives = Vec::new();
        loop {
            match self.peek() {
                Some(Token { tok: Tok::Punct(b'{'), .. }) => {
                    self.pos += 1;
                    let body = self.block_body(1)?;
                    return Ok(Function {
                        name,
                        is_entry,
                        linkage,
                        returns,
                        params,
                        directives,
                        body: Some(body),
                        line,
                    });
                }
                Some(Token { tok: Tok::Punct(b';'), .. }) => {
                    self.pos += 1;
                    return Ok(Function { name, is_entry, linkage, returns, params, directives, body: None, line });
                }
                Some(Token { tok: Tok::Word(".pragma"), .. }) => {
                    self.skip_to_semicolon()?;
                }
                Some(Token { tok: Tok::Word(".loc" | ".file"), line: l, .. }) => {
                    self.pos += 1;
                    self.skip_line(l);
                }
                Some(Token { tok: Tok::Word(w), .. }) if w.len() > 1 && w.starts_with('.') && is_ident(&w[1..]) => {
                    let dname = w[1..].to_string();
                    self.pos += 1;
                    let mut vals = Vec::new();
                    if self.peek_word().is_some_and(|w| parse_int(w).is_some()) {
                        vals.push(self.expect_u32("a directive value")?);
                        while self.eat_punct(b',') {
                            vals.push(self.expect_u32("a directive value")?);
                        }
                    }
                    directives.push((dname, vals));
                }
                _ => return self.unexpected("a performance directive, `{` or `;` after the function header"),
            }
        }
    }

    /// `( .param .u64 a, .param .align 16 .b8 b[64] )`, possibly empty.
    fn param_list(&mut self) -> PResult<Vec<Param>> {
        self.expect_punct(b'(', "to open a parameter list")?;
        let mut out = Vec::new();
        if self.eat_punct(b')') {
            return Ok(out);
        }
        loop {
            out.push(self.param()?);
            if self.eat_punct(b')') {
                return Ok(out);
            }
            self.expect_punct(b',', "or `)` in a parameter list")?;
        }
    }

    fn param(&mut self) -> PResult<Param> {
        let kw = self.expect_word("`.param` or `.reg`")?;
        if kw != ".param" && kw != ".reg" {
            self.pos -= 1;
            return self.unexpected("`.param` or `.reg`");
        }
        let mut align = None;
        let mut ty = None;
        let mut attrs = Vec::new();
        let mut ptr = false;
        while let Some(w) = self.peek_word() {
            if !w.starts_with('.') {
                break;
            }
            self.pos += 1;
            match w {
                ".align" => {
                    let a = self.expect_u32("an alignment")?;
                    if ptr {
                        attrs.push(format!("align {a}"));
                    } else {
                        align = Some(a);
                    }
                }
                ".ptr" => {
                    ptr = true;
                    attrs.push("ptr".to_string());
                }
                _ if ptr && matches!(w, ".global" | ".shared" | ".const" | ".local") => attrs.push(w[1..].to_string()),
                _ => match ScalarType::from_name(&w[1..]) {
                    Some(t) if ty.is_none() => ty = Some(t),
                    _ => {
                        self.pos -= 1;
                        return self.unexpected("a parameter type or attribute");
                    }
                },
            }
        }
        let Some(ty) = ty else { return self.unexpected("a parameter type (e.g. `.u64`)") };
        let name = self.expect_ident("a parameter name")?.to_string();
        let mut array_len = None;
        if self.eat_punct(b'[') {
            array_len = Some(self.expect_u32("a parameter array length")?);
            self.expect_punct(b']', "after the array length")?;
        }
        Ok(Param { name, ty, align, array_len, attrs })
    }

    // ---- bodies --------------------------------------------------------------------------

    /// Statements up to and including the closing `}` (the opening `{` is already consumed).
    fn block_body(&mut self, depth: u32) -> PResult<Vec<Statement>> {
        if depth > MAX_DEPTH {
            return self.err(format!("blocks nested deeper than {MAX_DEPTH}"));
        }
        let open_line = self.toks.get(self.pos.wrapping_sub(1)).map(|t| t.line).unwrap_or(1);
        let mut out = Vec::new();
        loop {
            let Some(tok) = self.peek() else {
                return Err(ParseError {
                    line: open_line,
                    message: "unclosed `{` (end of file inside a block)".into(),
                });
            };
            let line = tok.line;
            match tok.tok {
                Tok::Punct(b'}') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Tok::Punct(b'{') => {
                    self.pos += 1;
                    out.push(Statement::Block(self.block_body(depth + 1)?));
                }
                Tok::Punct(b'@') => out.push(Statement::Inst(self.instruction()?)),
                Tok::Punct(b';') => {
                    // An empty statement (hand-written `;;`): nothing to keep.
                    self.pos += 1;
                }
                Tok::Word(w) if w.starts_with('.') => match w {
                    ".reg" => out.push(Statement::Reg(self.reg_decl()?)),
                    ".global" | ".const" | ".shared" | ".local" | ".param" | ".shared::cta" => {
                        let mut v = Vec::new();
                        self.var_decls(false, &mut v)?;
                        out.extend(v.into_iter().map(Statement::Var));
                    }
                    ".extern" => {
                        self.pos += 1;
                        match self.peek_word() {
                            Some(".global" | ".const" | ".shared" | ".local" | ".shared::cta") => {
                                let mut v = Vec::new();
                                self.var_decls(true, &mut v)?;
                                out.extend(v.into_iter().map(Statement::Var));
                            }
                            _ => return self.unexpected("a variable declaration after `.extern`"),
                        }
                    }
                    ".loc" | ".file" => {
                        self.pos += 1;
                        self.skip_line(line);
                    }
                    ".section" => self.skip_section()?,
                    ".pragma" => {
                        self.pos += 1;
                        let mut text = String::new();
                        while let Some(t) = self.peek() {
                            match t.tok {
                                Tok::Str(s) => {
                                    if !text.is_empty() {
                                        text.push(' ');
                                    }
                                    text.push_str(s);
                                    self.pos += 1;
                                }
                                Tok::Punct(b',') => self.pos += 1,
                                _ => break,
                            }
                        }
                        self.expect_punct(b';', "after `.pragma`")?;
                        out.push(Statement::Pragma(text, line));
                    }
                    _ => {
                        // Another directive: keep its text for the decoder to accept or reject.
                        let start = tok.start;
                        let end = self.skip_to_semicolon()?;
                        let text = collapse(self.src.get(start + 1..end.saturating_sub(1)).unwrap_or(""));
                        out.push(Statement::Pragma(text, line));
                    }
                },
                Tok::Word(w) => {
                    if matches!(self.peek_at(1), Some(Token { tok: Tok::Punct(b':'), .. })) {
                        if !is_ident(w) {
                            return self.err(format!("bad label name `{}`", clip(w)));
                        }
                        self.pos += 2;
                        out.push(Statement::Label(w.to_string(), line));
                    } else {
                        out.push(Statement::Inst(self.instruction()?));
                    }
                }
                _ => return self.unexpected("a statement"),
            }
        }
    }

    /// `.reg .b32 %r<42>, %x;`
    fn reg_decl(&mut self) -> PResult<RegDecl> {
        let line = self.line();
        self.pos += 1; // .reg
        let tw = self.expect_word("a register type")?;
        let ty = match tw.strip_prefix('.').and_then(ScalarType::from_name) {
            Some(t) => t,
            None => {
                self.pos -= 1;
                return self.unexpected("a register type (e.g. `.b32`; vector registers are not supported)");
            }
        };
        let mut names = Vec::new();
        loop {
            let name = self.expect_ident("a register name")?.to_string();
            let mut count = None;
            if self.eat_punct(b'<') {
                count = Some(self.expect_u32("a register count")?);
                self.expect_punct(b'>', "after the register count")?;
            }
            names.push((name, count));
            if self.eat_punct(b';') {
                return Ok(RegDecl { ty, names, line });
            }
            self.expect_punct(b',', "or `;` in a register declaration")?;
        }
    }

    /// `.shared .align 16 .b8 name[1024], other[4] = {..};` (the space keyword is current).
    fn var_decls(&mut self, is_extern: bool, out: &mut Vec<VarDecl>) -> PResult<()> {
        let line = self.line();
        let sw = self.expect_word("a state space")?;
        let space = match sw {
            ".global" => StateSpace::Global,
            ".const" => StateSpace::Const,
            ".shared" | ".shared::cta" => StateSpace::Shared,
            ".local" => StateSpace::Local,
            ".param" => StateSpace::Param,
            _ => {
                self.pos -= 1;
                return self.unexpected("a state space");
            }
        };
        let mut align = None;
        let mut ty = None;
        let mut vec_len = None;
        while let Some(w) = self.peek_word() {
            if !w.starts_with('.') {
                break;
            }
            self.pos += 1;
            match w {
                ".align" => align = Some(self.expect_u32("an alignment")?),
                ".v2" => vec_len = Some(2),
                ".v4" => vec_len = Some(4),
                ".v8" => vec_len = Some(8),
                _ => match ScalarType::from_name(&w[1..]) {
                    Some(t) if ty.is_none() => ty = Some(t),
                    _ => {
                        self.pos -= 1;
                        return self.unexpected("a variable type or `.align`");
                    }
                },
            }
        }
        let Some(ty) = ty else { return self.unexpected("a variable type (e.g. `.b8`)") };
        let f64_floats = ty == ScalarType::F64;
        loop {
            let name = self.expect_ident("a variable name")?.to_string();
            let mut dims = Vec::new();
            while self.eat_punct(b'[') {
                if self.eat_punct(b']') {
                    dims.push(None);
                } else {
                    dims.push(Some(self.expect_u32("an array length")?));
                    self.expect_punct(b']', "after the array length")?;
                }
            }
            if let Some(v) = vec_len {
                dims.push(Some(v));
            }
            let mut init = None;
            if self.eat_punct(b'=') {
                let mut elems = Vec::new();
                self.initializer(f64_floats, 0, &mut elems)?;
                init = Some(elems);
            }
            out.push(VarDecl { space, name, ty, align, dims, is_extern, init, line });
            if self.eat_punct(b';') {
                return Ok(());
            }
            self.expect_punct(b',', "or `;` after a variable declaration")?;
        }
    }

    /// `{1, {2, 3}}` or a single value, flattened into `out`.
    fn initializer(&mut self, f64_floats: bool, depth: u32, out: &mut Vec<Operand>) -> PResult<()> {
        if depth > MAX_DEPTH {
            return self.err(format!("initialiser nested deeper than {MAX_DEPTH}"));
        }
        if self.eat_punct(b'{') {
            if self.eat_punct(b'}') {
                return Ok(());
            }
            loop {
                self.initializer(f64_floats, depth + 1, out)?;
                if self.eat_punct(b'}') {
                    return Ok(());
                }
                self.expect_punct(b',', "or `}` in an initialiser")?;
            }
        }
        let op = self.scalar_operand(f64_floats)?;
        out.push(op);
        Ok(())
    }

    // ---- instructions --------------------------------------------------------------------

    fn instruction(&mut self) -> PResult<Instruction> {
        let first = self.pos;
        let line = self.line();
        let start = self.peek().map(|t| t.start).unwrap_or(0);
        let mut guard = None;
        if self.eat_punct(b'@') {
            let neg = self.eat_punct(b'!');
            let p = self.expect_ident("a guard predicate after `@`")?;
            guard = Some((neg, p.to_string()));
        }
        let op_line = self.line();
        let word = match self.peek_word() {
            Some(w) if is_ident(w) && !w.starts_with('%') => w,
            _ => return self.unexpected("an instruction"),
        };
        self.pos += 1;
        let mut parts = word.split('.');
        let opcode = parts.next().unwrap_or("").to_string();
        let mut mods = Vec::new();
        for m in parts {
            if m.is_empty() {
                return Err(ParseError { line: op_line, message: format!("empty modifier in `{}`", clip(word)) });
            }
            mods.push(m.to_string());
        }
        let f64_floats = mods.iter().any(|m| m == "f64");
        let mut operands = Vec::new();
        if !self.is_punct(b';') {
            loop {
                operands.push(self.operand(f64_floats, 0)?);
                if self.is_punct(b';') {
                    break;
                }
                if !self.eat_punct(b',') {
                    return self.unexpected(&format!("`,` or `;` after an operand of `{}`", clip(word)));
                }
            }
        }
        let end = self.toks[self.pos].end; // the `;` (checked above)
        self.pos += 1;
        let raw = self.src.get(start..end).unwrap_or("");
        let text = if self.pos - first > 1 && raw.contains('\n') { collapse(raw) } else { raw.trim().to_string() };
        Ok(Instruction { line, text, guard, opcode, mods, operands })
    }

    /// One operand. `depth` bounds vector nesting.
    fn operand(&mut self, f64_floats: bool, depth: u32) -> PResult<Operand> {
        if depth > 2 {
            return self.err("operand nested too deeply".into());
        }
        let Some(tok) = self.peek() else { return self.unexpected("an operand") };
        match tok.tok {
            Tok::Punct(b'{') => {
                self.pos += 1;
                Ok(Operand::Vector(self.operand_list(b'}', f64_floats, depth)?))
            }
            Tok::Punct(b'(') => {
                self.pos += 1;
                Ok(Operand::Vector(self.operand_list(b')', f64_floats, depth)?))
            }
            Tok::Punct(b'[') => {
                self.pos += 1;
                self.address(f64_floats, depth)
            }
            Tok::Punct(b'!') => {
                self.pos += 1;
                Ok(Operand::Not(self.expect_ident("a predicate after `!`")?.to_string()))
            }
            Tok::Word(w) if is_ident(w) => {
                if matches!(self.peek_at(1), Some(Token { tok: Tok::Punct(b'|'), .. })) {
                    self.pos += 2;
                    let q = self.expect_ident("a predicate after `|`")?;
                    return Ok(Operand::PredPair(w.to_string(), q.to_string()));
                }
                self.scalar_operand(f64_floats)
            }
            _ => self.scalar_operand(f64_floats),
        }
    }

    /// Elements up to the closing `close` (the opener is consumed). May be empty.
    fn operand_list(&mut self, close: u8, f64_floats: bool, depth: u32) -> PResult<Vec<Operand>> {
        let mut v = Vec::new();
        if self.eat_punct(close) {
            return Ok(v);
        }
        loop {
            v.push(self.operand(f64_floats, depth + 1)?);
            if self.eat_punct(close) {
                return Ok(v);
            }
            if !self.eat_punct(b',') {
                return self.unexpected(&format!("`,` or `{}` in a list", close as char));
            }
        }
    }

    /// After `[`: `[base]`, `[base+off]`, `[base+-off]`, `[base-off]`, `[off]`, `[tmap, {c0, c1}]`.
    fn address(&mut self, f64_floats: bool, depth: u32) -> PResult<Operand> {
        let mut base = None;
        let mut offset: i64 = 0;
        match self.peek_word() {
            Some(w) if is_ident(w) => {
                self.pos += 1;
                base = Some(w.to_string());
            }
            _ => {
                offset = self.signed_int("an address base or offset")?;
            }
        }
        loop {
            if self.eat_punct(b'+') {
                offset = offset.wrapping_add(self.signed_int("an address offset")?);
            } else if self.eat_punct(b'-') {
                offset = offset.wrapping_sub(self.signed_int("an address offset")?);
            } else {
                break;
            }
        }
        let addr = Operand::Address { base, offset };
        if self.eat_punct(b',') {
            let coords = self.operand(f64_floats, depth + 1)?;
            self.expect_punct(b']', "to close a tensor address")?;
            return Ok(Operand::Vector(vec![addr, coords]));
        }
        self.expect_punct(b']', "to close an address")?;
        Ok(addr)
    }

    /// `[-]integer`.
    fn signed_int(&mut self, what: &str) -> PResult<i64> {
        let neg = self.eat_punct(b'-');
        match self.peek_word().and_then(parse_int) {
            Some(v) => {
                self.pos += 1;
                Ok(if neg { v.wrapping_neg() } else { v })
            }
            None => self.unexpected(&format!("{what} (an integer)")),
        }
    }

    /// A name, `_`, `name+off`, `generic(name)[+off]`, or a (possibly negative) number.
    fn scalar_operand(&mut self, f64_floats: bool) -> PResult<Operand> {
        let neg = self.eat_punct(b'-');
        let line = self.line();
        let Some(w) = self.peek_word() else { return self.unexpected("an operand") };
        let c0 = w.as_bytes()[0];
        if c0.is_ascii_digit() {
            self.pos += 1;
            return parse_number(w, neg, f64_floats)
                .ok_or_else(|| ParseError { line, message: format!("bad number `{}`", clip(w)) });
        }
        if neg || !is_ident(w) {
            return self.unexpected("an operand");
        }
        self.pos += 1;
        if w == "_" {
            return Ok(Operand::Sink);
        }
        let mut name = w;
        if w == "generic" && self.is_punct(b'(') {
            self.pos += 1;
            name = self.expect_ident("a variable name inside `generic( )`")?;
            self.expect_punct(b')', "after `generic(name`")?;
        }
        let mut offset: i64 = 0;
        let mut has_offset = false;
        loop {
            if self.eat_punct(b'+') {
                offset = offset.wrapping_add(self.signed_int("an offset")?);
            } else if self.eat_punct(b'-') {
                offset = offset.wrapping_sub(self.signed_int("an offset")?);
            } else {
                break;
            }
            has_offset = true;
        }
        Ok(if has_offset { Operand::SymbolOffset(name.to_string(), offset) } else { Operand::Name(name.to_string()) })
    }
}

/// A name: starts with a letter, `_`, `$` or `%` (not a directive, not a number) and has no
/// empty dotted part at its end.
fn is_ident(w: &str) -> bool {
    let b = w.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' || *c == b'$' || *c == b'%' => {}
        _ => return false,
    }
    !(b.len() == 1 && b[0] == b'%')
}

/// Whitespace runs (incl. newlines) -> one space; trimmed.
fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for part in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Integer literal: decimal, `0x` hex, `0b` binary, leading-`0` octal; optional `U` suffix.
/// Values above i64::MAX (up to u64::MAX) wrap to their two's-complement bits.
pub(crate) fn parse_int(w: &str) -> Option<i64> {
    let w = w.strip_suffix(['U', 'u']).unwrap_or(w);
    let b = w.as_bytes();
    if b.is_empty() || !b[0].is_ascii_digit() {
        return None;
    }
    let (digits, radix) = if b.len() > 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        (&w[2..], 16)
    } else if b.len() > 2 && b[0] == b'0' && (b[1] == b'b' || b[1] == b'B') {
        (&w[2..], 2)
    } else if b.len() > 1 && b[0] == b'0' {
        (&w[1..], 8)
    } else {
        (w, 10)
    };
    // from_str_radix accepts a leading '+'; PTX does not.
    if digits.starts_with('+') || digits.starts_with('-') {
        return None;
    }
    u64::from_str_radix(digits, radix).ok().map(|v| v as i64)
}

/// A number in operand position: an integer, `0f`/`0d` hex float, or a decimal float.
fn parse_number(w: &str, neg: bool, f64_floats: bool) -> Option<Operand> {
    let b = w.as_bytes();
    if b.len() > 2 && b[0] == b'0' && (b[1] == b'f' || b[1] == b'F') {
        if b.len() != 10 {
            return None;
        }
        let bits = u32::from_str_radix(&w[2..], 16).ok()?;
        if w[2..].starts_with('+') {
            return None;
        }
        return Some(Operand::F32(if neg { bits ^ 0x8000_0000 } else { bits }));
    }
    if b.len() > 2 && b[0] == b'0' && (b[1] == b'd' || b[1] == b'D') {
        if b.len() != 18 {
            return None;
        }
        let bits = u64::from_str_radix(&w[2..], 16).ok()?;
        if w[2..].starts_with('+') {
            return None;
        }
        return Some(Operand::F64(if neg { bits ^ 0x8000_0000_0000_0000 } else { bits }));
    }
    if let Some(v) = parse_int(w) {
        return Some(Operand::Int(if neg { v.wrapping_neg() } else { v }));
    }
    // Decimal float: digits, optional fraction, optional exponent. Validate the shape ourselves
    // (Rust's parser also takes "inf", "nan", which are no PTX literals).
    let is_hexish = b.len() > 1 && b[0] == b'0' && matches!(b[1], b'x' | b'X' | b'b' | b'B');
    let has_point_or_exp = b.iter().any(|c| matches!(c, b'.' | b'e' | b'E'));
    if is_hexish
        || !has_point_or_exp
        || !b.iter().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    if f64_floats {
        let v: f64 = w.parse().ok()?;
        let v = if neg { -v } else { v };
        Some(Operand::F64(v.to_bits()))
    } else {
        let v: f32 = w.parse().ok()?;
        let v = if neg { -v } else { v };
        Some(Operand::F32(v.to_bits()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints() {
        assert_eq!(parse_int("42"), Some(42));
        assert_eq!(parse_int("0x1F"), Some(31));
        assert_eq!(parse_int("017"), Some(15));
        assert_eq!(parse_int("0b101"), Some(5));
        assert_eq!(parse_int("0"), Some(0));
        assert_eq!(parse_int("7U"), Some(7));
        assert_eq!(parse_int("0xFFFFFFFFFFFFFFFF"), Some(-1));
        assert_eq!(parse_int("08"), None);
        assert_eq!(parse_int("1.5"), None);
        assert_eq!(parse_int("0x+1"), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0f3F800000", false, false), Some(Operand::F32(0x3F80_0000)));
        assert_eq!(parse_number("0f3F800000", true, false), Some(Operand::F32(0xBF80_0000)));
        assert_eq!(parse_number("0d3FF0000000000000", false, false), Some(Operand::F64(0x3FF0_0000_0000_0000)));
        assert_eq!(parse_number("1.5", false, false), Some(Operand::F32(1.5f32.to_bits())));
        assert_eq!(parse_number("1.5", true, true), Some(Operand::F64((-1.5f64).to_bits())));
        assert_eq!(parse_number("1e-3", false, false), Some(Operand::F32(1e-3f32.to_bits())));
        assert_eq!(parse_number("0f3F8", false, false), None);
        assert_eq!(parse_number("1.5.5", false, false), None);
    }
}

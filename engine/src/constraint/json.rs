//! JSON mode and strict schemas.
//!
//! - [`JsonGrammar`]: an incremental byte-level recogniser of one JSON value (RFC 8259), with an
//!   optional [`JsonSchema`] enforced while the value is written. Its state is small and `Copy`
//!   apart from the committed container stack, so testing a byte string against it is cheap.
//! - [`JsonSchema`]: the compiled subset of JSON Schema (`type` incl. type arrays, `properties`,
//!   `required`, `additionalProperties` false / schema, `items`, `enum`, `const`, `nullable`).
//!   A sub-schema using anything else that constrains values (`anyOf`, `$ref`, `pattern`,
//!   `minimum` ...) is plain JSON, for generation and for [`validate`] alike, so a valid output is
//!   never rejected.
//! - [`JsonConstraint`]: the [`Constraint`] for the engine: masks every token whose bytes cannot
//!   extend the output to a valid prefix, then allows only EOS once the value is complete.
//!
//! Limits that keep every output parseable by `serde_json` and generation finite: nesting depth
//! [`MAX_DEPTH`], runs of at most [`MAX_WS_RUN`] whitespace bytes, numbers below 1e308 in
//! magnitude by their digit counts (integer digits + exponent <= 308, so 1.5e308 is refused
//! although finite) with exponents of at most 8 digits, surrogate escapes only in valid pairs.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::Constraint;

/// Deepest nesting of arrays/objects accepted.
pub const MAX_DEPTH: usize = 64;
/// Longest run of whitespace bytes accepted (between tokens of the JSON text).
pub const MAX_WS_RUN: u8 = 64;
/// Deepest schema nesting compiled; deeper sub-schemas are plain JSON.
const MAX_SCHEMA_DEPTH: usize = 32;
/// Containers one trial step sequence may open before the committed stack is updated (the
/// longest real token opens 3).
const OVERLAY: usize = 6;
/// Integer digits + positive exponent: keeps every number below 1e308 (finite as f64).
const MAX_MAGNITUDE: u16 = 308;
/// Exponent digits (leading zeros included).
const MAX_EXP_DIGITS: u8 = 8;

// Type bits.
const T_NULL: u8 = 1;
const T_BOOL: u8 = 2;
const T_INT: u8 = 4;
const T_NUM: u8 = 8;
const T_STR: u8 = 16;
const T_ARR: u8 = 32;
const T_OBJ: u8 = 64;
const T_ALL: u8 = 127;

/// Node 0 of every compiled schema: any JSON value.
const ANY: u16 = 0;

/// Keywords that constrain values in ways this subset does not enforce: a sub-schema using one
/// is treated as plain JSON.
const UNSUPPORTED: &[&str] = &[
    "anyOf", "oneOf", "allOf", "not", "$ref", "$dynamicRef", "$recursiveRef", "if", "then", "else",
    "dependentSchemas", "dependentRequired", "dependencies", "patternProperties", "propertyNames",
    "unevaluatedProperties", "unevaluatedItems", "prefixItems", "additionalItems", "contains",
    "minContains", "maxContains", "minItems", "maxItems", "uniqueItems", "minProperties",
    "maxProperties", "pattern", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "contentSchema",
];

// ---------------------------------------------------------------------------------------------
// Schema

#[derive(Debug, Clone)]
struct Node {
    types: u8,
    /// Property names (listed properties, then required names not listed) and their schemas.
    prop_names: Vec<Box<[u8]>>,
    prop_nodes: Vec<u16>,
    /// Bit i: `prop_names[i]` is required.
    required: u64,
    /// Schema of other keys; None: no other keys (`additionalProperties: false`).
    additional: Option<u16>,
    items: u16,
    /// `enum`/`const`: the allowed values (None: no enum).
    enum_vals: Option<Vec<Value>>,
    /// String values of the enum (decoded UTF-8).
    enum_str: Vec<Box<[u8]>>,
    /// Other values of the enum, in serde_json's compact spelling (the only spelling generated).
    enum_lit: Vec<Box<[u8]>>,
}

impl Node {
    fn any() -> Node {
        Node {
            types: T_ALL,
            prop_names: Vec::new(),
            prop_nodes: Vec::new(),
            required: 0,
            additional: Some(ANY),
            items: ANY,
            enum_vals: None,
            enum_str: Vec::new(),
            enum_lit: Vec::new(),
        }
    }
}

/// A compiled JSON Schema (the supported subset; see the module docs).
#[derive(Debug, Clone)]
pub struct JsonSchema {
    nodes: Vec<Node>,
    root: u16,
}

impl Default for JsonSchema {
    fn default() -> Self {
        JsonSchema::any()
    }
}

fn type_bit(name: &str) -> u8 {
    match name {
        "null" => T_NULL,
        "boolean" => T_BOOL,
        "integer" => T_INT,
        "number" => T_NUM | T_INT,
        "string" => T_STR,
        "array" => T_ARR,
        "object" => T_OBJ,
        _ => 0,
    }
}

fn bits(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

impl JsonSchema {
    /// Plain JSON: any value.
    pub fn any() -> JsonSchema {
        JsonSchema { nodes: vec![Node::any()], root: ANY }
    }

    /// Compile a JSON Schema. Never fails: what is not understood is plain JSON.
    pub fn compile(schema: &Value) -> JsonSchema {
        let mut s = JsonSchema::any();
        s.root = s.compile_node(schema, 0);
        s
    }

    /// Whether the schema constrains nothing (the root is plain JSON).
    pub fn is_any(&self) -> bool {
        self.root == ANY
    }

    fn compile_node(&mut self, s: &Value, depth: usize) -> u16 {
        let Value::Object(m) = s else { return ANY };
        if depth > MAX_SCHEMA_DEPTH || self.nodes.len() >= u16::MAX as usize {
            return ANY;
        }
        if m.keys().any(|k| UNSUPPORTED.contains(&k.as_str())) {
            return ANY;
        }
        let mut types = match m.get("type") {
            None => T_ALL,
            Some(Value::String(t)) => type_bit(t),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).fold(0, |acc, t| acc | type_bit(t)),
            Some(_) => return ANY,
        };
        if m.get("nullable") == Some(&Value::Bool(true)) {
            types |= T_NULL;
        }
        if types == 0 {
            return ANY;
        }
        let items = match m.get("items") {
            None | Some(Value::Bool(true)) => ANY,
            Some(v @ Value::Object(_)) => self.compile_node(v, depth + 1),
            Some(_) => return ANY,
        };
        let mut prop_names: Vec<Box<[u8]>> = Vec::new();
        let mut prop_nodes = Vec::new();
        match m.get("properties") {
            None => {}
            Some(Value::Object(p)) => {
                for (k, v) in p {
                    prop_names.push(k.as_bytes().into());
                    prop_nodes.push(self.compile_node(v, depth + 1));
                }
            }
            Some(_) => return ANY,
        }
        let mut required = 0u64;
        match m.get("required") {
            None => {}
            Some(Value::Array(r)) => {
                for name in r {
                    let Some(name) = name.as_str() else { return ANY };
                    let i = match prop_names.iter().position(|p| **p == *name.as_bytes()) {
                        Some(i) => i,
                        None => {
                            prop_names.push(name.as_bytes().into());
                            prop_nodes.push(ANY);
                            prop_names.len() - 1
                        }
                    };
                    if i >= 64 {
                        return ANY;
                    }
                    required |= 1 << i;
                }
            }
            Some(_) => return ANY,
        }
        if prop_names.len() > 64 {
            return ANY;
        }
        let additional = match m.get("additionalProperties") {
            None | Some(Value::Bool(true)) => Some(ANY),
            Some(Value::Bool(false)) => None,
            Some(v @ Value::Object(_)) => Some(self.compile_node(v, depth + 1)),
            Some(_) => return ANY,
        };
        let mut node = Node { types, prop_names, prop_nodes, required, additional, items, ..Node::any() };

        let mut options = match m.get("enum") {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => return ANY,
        };
        if let Some(c) = m.get("const") {
            options = Some(match options {
                None => vec![c.clone()],
                Some(o) if o.iter().any(|x| json_eq(x, c)) => vec![c.clone()],
                Some(_) => Vec::new(),
            });
        }
        if let Some(options) = options {
            // Keep the values the rest of the schema allows; none left: unsatisfiable, so plain JSON.
            let mut path = String::from("$");
            let keep: Vec<Value> = options.into_iter().filter(|v| self.check(v, &node, &mut path).is_ok()).collect();
            if keep.is_empty() {
                return ANY;
            }
            for v in &keep {
                match v {
                    Value::String(s) => node.enum_str.push(s.as_bytes().into()),
                    other => node.enum_lit.push(serde_json::to_string(other).expect("a Value serialises").into_bytes().into()),
                }
            }
            if node.enum_str.len() > 64 || node.enum_lit.len() > 64 {
                return ANY;
            }
            node.enum_vals = Some(keep);
        }
        self.nodes.push(node);
        (self.nodes.len() - 1) as u16
    }

    /// Check `value` against the schema; the error names the failing path (`$.a.b[2]: ...`).
    pub fn validate(&self, value: &Value) -> Result<(), String> {
        let mut path = String::from("$");
        self.check_id(value, self.root, &mut path)
    }

    fn check_id(&self, v: &Value, id: u16, path: &mut String) -> Result<(), String> {
        if id == ANY {
            return Ok(());
        }
        self.check(v, &self.nodes[id as usize], path)
    }

    fn check(&self, v: &Value, n: &Node, path: &mut String) -> Result<(), String> {
        if let Some(options) = &n.enum_vals {
            if options.iter().any(|o| json_eq(o, v)) {
                return Ok(());
            }
            let list: Vec<String> = options.iter().take(8).map(|o| o.to_string()).collect();
            let more = if options.len() > 8 { ", ..." } else { "" };
            return Err(format!("{path}: expected one of {}{more}", list.join(", ")));
        }
        if kind_of(v) & n.types == 0 {
            return Err(format!("{path}: expected {}", type_names(n.types)));
        }
        match v {
            Value::Object(m) => {
                for (i, name) in n.prop_names.iter().enumerate() {
                    let name = std::str::from_utf8(name).expect("names come from strings");
                    if n.required >> i & 1 == 1 && !m.contains_key(name) {
                        return Err(format!("{path}: missing required property {}", Value::from(name)));
                    }
                }
                for (k, val) in m {
                    let len = path.len();
                    push_key(path, k);
                    let r = match n.prop_names.iter().position(|p| **p == *k.as_bytes()) {
                        Some(i) => self.check_id(val, n.prop_nodes[i], path),
                        None => match n.additional {
                            None => Err(format!("{path}: unexpected property (additionalProperties is false)")),
                            Some(a) => self.check_id(val, a, path),
                        },
                    };
                    path.truncate(len);
                    r?;
                }
                Ok(())
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    let r = self.check_id(x, n.items, path);
                    path.truncate(len);
                    r?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Check `value` against `schema` (the subset [`JsonSchema`] supports; the rest is not checked).
/// The error names the failing path, e.g. `$.location: expected string`.
pub fn validate(value: &Value, schema: &Value) -> Result<(), String> {
    JsonSchema::compile(schema).validate(value)
}

fn push_key(path: &mut String, k: &str) {
    let ident = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ident {
        path.push('.');
        path.push_str(k);
    } else {
        path.push('[');
        path.push_str(&Value::from(k).to_string());
        path.push(']');
    }
}

fn is_integral(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

fn kind_of(v: &Value) -> u8 {
    match v {
        Value::Null => T_NULL,
        Value::Bool(_) => T_BOOL,
        Value::Number(n) if is_integral(n) => T_INT,
        Value::Number(_) => T_NUM,
        Value::String(_) => T_STR,
        Value::Array(_) => T_ARR,
        Value::Object(_) => T_OBJ,
    }
}

fn type_names(t: u8) -> String {
    let mut names = Vec::new();
    for (bit, name) in [(T_OBJ, "object"), (T_ARR, "array"), (T_STR, "string")] {
        if t & bit != 0 {
            names.push(name);
        }
    }
    if t & T_NUM != 0 {
        names.push("number");
    } else if t & T_INT != 0 {
        names.push("integer");
    }
    for (bit, name) in [(T_BOOL, "boolean"), (T_NULL, "null")] {
        if t & bit != 0 {
            names.push(name);
        }
    }
    names.join(" or ")
}

/// JSON equality as JSON Schema has it: numbers by value (1 == 1.0).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return x == y;
            }
            if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                return x == y;
            }
            x.as_f64() == y.as_f64()
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------------------------
// Grammar state

/// An open array or object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Frame {
    /// Bit i: property i of the object's node has been written.
    seen: u64,
    node: u16,
    obj: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// A value for `node` comes next (whitespace allowed).
    Value,
    /// After `[`: a value or `]`.
    ArrFirst,
    /// After `{`: a key or `}`.
    ObjFirst,
    /// After `,` in an object: a key.
    ObjNext,
    /// Inside a key.
    Key,
    /// After a key: `:` (then the value for `node`).
    Colon,
    /// After a value in a container: `,` or the close.
    After,
    /// Inside a string value.
    Str,
    Num,
    /// Inside `true` / `false` / `null`.
    Lit,
    /// Inside a non-string enum value (matched against its compact spelling).
    Enum,
    /// The top-level value is closed: nothing may follow.
    Done,
}

// Number phases.
const N_MINUS: u8 = 0;
const N_ZERO: u8 = 1;
const N_INT: u8 = 2;
const N_DOT: u8 = 3;
const N_FRAC: u8 = 4;
const N_E: u8 = 5;
const N_ESIGN: u8 = 6;
const N_EXP: u8 = 7;

const LITERALS: [&[u8]; 3] = [b"true", b"false", b"null"];

/// The part of the recogniser's state that changes within a token: `Copy`, ~150 bytes. The
/// container stack is the committed `base` (frames below `top`, of which the first `base_len`
/// are still open) plus up to OVERLAY frames opened since the last commit.
#[derive(Clone, Copy, Debug)]
struct Head {
    mode: Mode,
    /// Value/Colon: the schema node of the value to come; Str/Enum: of the current value.
    node: u16,
    ws: u8,
    /// Open containers (including `top`).
    depth: u8,
    base_len: u8,
    ov_len: u8,
    top: Frame,
    ov: [Frame; OVERLAY],
    // Strings: 0 plain, 1 after `\`, 2..=5 reading hex digit (esc - 2) of `\u`.
    esc: u8,
    hex: u16,
    /// A high surrogate waiting for its low half (0: none).
    hi_sur: u16,
    /// UTF-8 continuation bytes still due and the range of the next one.
    need: u8,
    lo: u8,
    hi: u8,
    // Matching a key / string enum / literal enum against candidates.
    matching: bool,
    /// A key that matches no property is allowed (it then goes free).
    free_ok: bool,
    cands: u64,
    /// Decoded bytes matched so far.
    pos: u32,
    // Numbers.
    nphase: u8,
    int_only: bool,
    nexp_neg: bool,
    nexpd: u8,
    nint: u16,
    nexp: u32,
    // true/false/null.
    lit: u8,
    lpos: u8,
}

impl Head {
    fn new(root: u16) -> Head {
        Head {
            mode: Mode::Value,
            node: root,
            ws: 0,
            depth: 0,
            base_len: 0,
            ov_len: 0,
            top: Frame::default(),
            ov: [Frame::default(); OVERLAY],
            esc: 0,
            hex: 0,
            hi_sur: 0,
            need: 0,
            lo: 0,
            hi: 0,
            matching: false,
            free_ok: false,
            cands: 0,
            pos: 0,
            nphase: 0,
            int_only: false,
            nexp_neg: false,
            nexpd: 0,
            nint: 0,
            nexp: 0,
            lit: 0,
            lpos: 0,
        }
    }

    fn start_string(&mut self) {
        self.esc = 0;
        self.hi_sur = 0;
        self.need = 0;
        self.pos = 0;
    }

    fn end_value(&mut self) {
        self.mode = if self.depth == 0 { Mode::Done } else { Mode::After };
        self.ws = 0;
    }

    fn push(&mut self, frame: Frame) -> bool {
        if self.depth as usize >= MAX_DEPTH {
            return false;
        }
        if self.depth > 0 {
            if self.ov_len as usize == OVERLAY {
                return false;
            }
            self.ov[self.ov_len as usize] = self.top;
            self.ov_len += 1;
        }
        self.top = frame;
        self.depth += 1;
        true
    }

    fn pop(&mut self, base: &[Frame]) -> bool {
        self.depth -= 1;
        if self.depth == 0 {
            self.mode = Mode::Done;
        } else {
            if self.ov_len > 0 {
                self.ov_len -= 1;
                self.top = self.ov[self.ov_len as usize];
            } else {
                self.base_len -= 1;
                self.top = base[self.base_len as usize];
            }
            self.mode = Mode::After;
        }
        self.ws = 0;
        true
    }

    fn complete(&self, schema: &JsonSchema) -> bool {
        match self.mode {
            Mode::Done => true,
            Mode::Num => self.depth == 0 && matches!(self.nphase, N_ZERO | N_INT | N_FRAC | N_EXP),
            Mode::Enum => {
                let list = &schema.nodes[self.node as usize].enum_lit;
                self.depth == 0 && any_complete(list, self.cands, self.pos)
            }
            _ => false,
        }
    }
}

fn any_complete(list: &[Box<[u8]>], cands: u64, pos: u32) -> bool {
    let mut m = cands;
    while m != 0 {
        let c = m.trailing_zeros() as usize;
        m &= m - 1;
        if list[c].len() == pos as usize {
            return true;
        }
    }
    false
}

fn complete_cand(list: &[Box<[u8]>], cands: u64, pos: u32) -> Option<usize> {
    let mut m = cands;
    while m != 0 {
        let c = m.trailing_zeros() as usize;
        m &= m - 1;
        if list[c].len() == pos as usize {
            return Some(c);
        }
    }
    None
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The char starting at `pos` of valid UTF-8 `s`.
fn char_at(s: &[u8], pos: usize) -> Option<u32> {
    let b0 = *s.get(pos)? as u32;
    let cont = |i: usize| s.get(pos + i).map(|&b| (b & 0x3F) as u32);
    Some(if b0 < 0x80 {
        b0
    } else if b0 < 0xE0 {
        (b0 & 0x1F) << 6 | cont(1)?
    } else if b0 < 0xF0 {
        (b0 & 0x0F) << 12 | cont(1)? << 6 | cont(2)?
    } else {
        (b0 & 0x07) << 18 | cont(1)? << 12 | cont(2)? << 6 | cont(3)?
    })
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

enum NumStep {
    Take,
    End,
    Reject,
}

fn num_byte(h: &mut Head, b: u8) -> NumStep {
    let digit = b.is_ascii_digit();
    match h.nphase {
        N_MINUS => match b {
            b'0' => {
                h.nphase = N_ZERO;
                h.nint = 1;
            }
            b'1'..=b'9' => {
                h.nphase = N_INT;
                h.nint = 1;
            }
            _ => return NumStep::Reject,
        },
        N_ZERO | N_INT | N_FRAC if !h.int_only && (b == b'e' || b == b'E') => h.nphase = N_E,
        N_ZERO | N_INT if !h.int_only && b == b'.' => h.nphase = N_DOT,
        N_INT if digit => {
            if h.nint >= MAX_MAGNITUDE {
                return NumStep::Reject;
            }
            h.nint += 1;
        }
        N_DOT | N_FRAC if digit => h.nphase = N_FRAC,
        N_E if b == b'+' || b == b'-' => {
            h.nphase = N_ESIGN;
            h.nexp_neg = b == b'-';
        }
        N_E | N_ESIGN | N_EXP if digit => {
            let e = if h.nphase == N_EXP { h.nexp * 10 } else { 0 } + (b - b'0') as u32;
            let digits = if h.nphase == N_EXP { h.nexpd + 1 } else { 1 };
            let too_big = !h.nexp_neg && h.nint as u32 + e > MAX_MAGNITUDE as u32;
            if digits > MAX_EXP_DIGITS || too_big {
                return NumStep::Reject;
            }
            h.nphase = N_EXP;
            h.nexp = e;
            h.nexpd = digits;
        }
        N_ZERO | N_INT | N_FRAC | N_EXP => return NumStep::End,
        _ => return NumStep::Reject,
    }
    NumStep::Take
}

impl JsonSchema {
    fn cand_list(&self, h: &Head) -> &[Box<[u8]>] {
        match h.mode {
            Mode::Key => &self.nodes[h.top.node as usize].prop_names,
            Mode::Str => &self.nodes[h.node as usize].enum_str,
            _ => &self.nodes[h.node as usize].enum_lit,
        }
    }

    /// No candidate left: a free key if allowed, else reject.
    fn no_cands(h: &mut Head) -> bool {
        if h.free_ok {
            h.matching = false;
            true
        } else {
            false
        }
    }

    /// Some candidate goes on after the decoded bytes matched so far.
    fn any_next_char(&self, h: &Head) -> bool {
        let list = self.cand_list(h);
        let mut m = h.cands;
        while m != 0 {
            let c = m.trailing_zeros() as usize;
            m &= m - 1;
            if list[c].len() > h.pos as usize {
                return true;
            }
        }
        false
    }

    /// One decoded byte of the string being matched.
    fn match_byte(&self, h: &mut Head, b: u8) -> bool {
        if !h.matching {
            return true;
        }
        let list = self.cand_list(h);
        let (mut m, mut keep) = (h.cands, 0u64);
        while m != 0 {
            let c = m.trailing_zeros();
            m &= m - 1;
            if list[c as usize].get(h.pos as usize) == Some(&b) {
                keep |= 1 << c;
            }
        }
        h.cands = keep;
        h.pos += 1;
        keep != 0 || Self::no_cands(h)
    }

    fn match_char(&self, h: &mut Head, cp: u32) -> bool {
        let c = char::from_u32(cp).expect("a scalar value");
        let mut buf = [0u8; 4];
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            if !h.matching {
                break;
            }
            if !self.match_byte(h, b) {
                return false;
            }
        }
        true
    }

    /// Hex digit `k` (0..4) of a `\u` escape: keep the candidates whose next UTF-16 unit starts
    /// with the digits so far.
    fn match_hex(&self, h: &mut Head, k: u8) -> bool {
        let list = self.cand_list(h);
        let shift = 4 * (3 - k as u32);
        let (mut m, mut keep) = (h.cands, 0u64);
        while m != 0 {
            let c = m.trailing_zeros();
            m &= m - 1;
            let Some(cp) = char_at(&list[c as usize], h.pos as usize) else { continue };
            let unit = if h.hi_sur != 0 {
                if cp < 0x10000 {
                    continue;
                }
                0xDC00 + ((cp - 0x10000) & 0x3FF)
            } else if cp >= 0x10000 {
                0xD800 + ((cp - 0x10000) >> 10)
            } else {
                cp
            };
            if unit >> shift == h.hex as u32 {
                keep |= 1 << c;
            }
        }
        h.cands = keep;
        keep != 0 || Self::no_cands(h)
    }

    fn close_string(&self, h: &mut Head) -> bool {
        if h.mode == Mode::Key {
            let n = &self.nodes[h.top.node as usize];
            let vnode = if h.matching {
                match complete_cand(&n.prop_names, h.cands, h.pos) {
                    Some(c) => {
                        if h.top.seen >> c & 1 == 1 {
                            return false; // a duplicate key
                        }
                        h.top.seen |= 1 << c;
                        n.prop_nodes[c]
                    }
                    None => match n.additional {
                        Some(a) => a,
                        None => return false,
                    },
                }
            } else {
                n.additional.unwrap_or(ANY)
            };
            h.node = vnode;
            h.mode = Mode::Colon;
            h.ws = 0;
            true
        } else {
            if h.matching && !any_complete(&self.nodes[h.node as usize].enum_str, h.cands, h.pos) {
                return false;
            }
            h.end_value();
            true
        }
    }

    fn string_byte(&self, h: &mut Head, b: u8) -> bool {
        if h.need > 0 {
            if b < h.lo || b > h.hi {
                return false;
            }
            h.need -= 1;
            h.lo = 0x80;
            h.hi = 0xBF;
            return self.match_byte(h, b);
        }
        match h.esc {
            0 => {}
            1 => {
                if h.hi_sur != 0 && b != b'u' {
                    return false;
                }
                let d = match b {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 8,
                    b'f' => 12,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => {
                        h.esc = 2;
                        h.hex = 0;
                        return true;
                    }
                    _ => return false,
                };
                h.esc = 0;
                return self.match_byte(h, d);
            }
            _ => {
                let Some(d) = hex_val(b) else { return false };
                let k = h.esc - 2;
                h.hex = h.hex << 4 | d as u16;
                if h.hi_sur != 0 {
                    // The low half of a pair: DC00..=DFFF.
                    if (k == 0 && d != 0xD) || (k == 1 && d < 0xC) {
                        return false;
                    }
                } else if k == 1 && h.hex >> 4 == 0xD && d >= 0xC {
                    return false; // a lone low surrogate
                }
                if h.matching && !self.match_hex(h, k) {
                    return false;
                }
                if k < 3 {
                    h.esc += 1;
                    return true;
                }
                h.esc = 0;
                let v = h.hex as u32;
                if h.hi_sur != 0 {
                    let cp = 0x10000 + ((h.hi_sur as u32 - 0xD800) << 10) + (v - 0xDC00);
                    h.hi_sur = 0;
                    return self.match_char(h, cp);
                }
                if (0xD800..0xDC00).contains(&v) {
                    h.hi_sur = v as u16;
                    return true;
                }
                return self.match_char(h, v);
            }
        }
        if h.hi_sur != 0 {
            // Only the `\u` of the low half may follow a high surrogate.
            if b == b'\\' {
                h.esc = 1;
                return true;
            }
            return false;
        }
        let (need, lo, hi) = match b {
            b'"' => return self.close_string(h),
            b'\\' => {
                // An escape is one more char: some candidate must have one.
                if h.matching && !self.any_next_char(h) && !Self::no_cands(h) {
                    return false;
                }
                h.esc = 1;
                return true;
            }
            0..=0x1F => return false,
            0x20..=0x7F => (0, 0, 0),
            _ => match super::utf8_lead(b) {
                Some(lead) => lead,
                None => return false,
            },
        };
        h.need = need;
        h.lo = lo;
        h.hi = hi;
        self.match_byte(h, b)
    }

    fn can_add_key(&self, f: &Frame) -> bool {
        let n = &self.nodes[f.node as usize];
        n.additional.is_some() || bits(n.prop_names.len()) & !f.seen != 0
    }

    fn start_key(&self, h: &mut Head) {
        let n = &self.nodes[h.top.node as usize];
        h.mode = Mode::Key;
        h.start_string();
        h.matching = !n.prop_names.is_empty();
        h.free_ok = n.additional.is_some();
        // With other keys allowed, written properties stay candidates to catch duplicates.
        h.cands = if h.free_ok { bits(n.prop_names.len()) } else { bits(n.prop_names.len()) & !h.top.seen };
    }

    fn start_value(&self, h: &mut Head, node: u16, b: u8) -> bool {
        let n = &self.nodes[node as usize];
        h.node = node;
        if n.enum_vals.is_some() {
            if b == b'"' {
                if n.enum_str.is_empty() {
                    return false;
                }
                h.mode = Mode::Str;
                h.start_string();
                h.matching = true;
                h.free_ok = false;
                h.cands = bits(n.enum_str.len());
                return true;
            }
            let mut cands = 0u64;
            for (i, lit) in n.enum_lit.iter().enumerate() {
                if lit[0] == b {
                    cands |= 1 << i;
                }
            }
            if cands == 0 {
                return false;
            }
            h.mode = Mode::Enum;
            h.cands = cands;
            h.pos = 1;
            if Self::all_complete(&n.enum_lit, cands, 1) {
                h.end_value();
            }
            return true;
        }
        let t = n.types;
        match b {
            b'{' if t & T_OBJ != 0 => {
                h.mode = Mode::ObjFirst;
                h.push(Frame { seen: 0, node, obj: true })
            }
            b'[' if t & T_ARR != 0 => {
                h.mode = Mode::ArrFirst;
                h.push(Frame { seen: 0, node, obj: false })
            }
            b'"' if t & T_STR != 0 => {
                h.mode = Mode::Str;
                h.start_string();
                h.matching = false;
                true
            }
            b'-' | b'0'..=b'9' if t & (T_NUM | T_INT) != 0 => {
                h.mode = Mode::Num;
                h.int_only = t & T_NUM == 0;
                h.nphase = match b {
                    b'-' => N_MINUS,
                    b'0' => N_ZERO,
                    _ => N_INT,
                };
                h.nint = (b != b'-') as u16;
                h.nexp = 0;
                h.nexpd = 0;
                h.nexp_neg = false;
                true
            }
            b't' | b'f' if t & T_BOOL != 0 => {
                h.mode = Mode::Lit;
                h.lit = if b == b't' { 0 } else { 1 };
                h.lpos = 1;
                true
            }
            b'n' if t & T_NULL != 0 => {
                h.mode = Mode::Lit;
                h.lit = 2;
                h.lpos = 1;
                true
            }
            _ => false,
        }
    }

    fn all_complete(list: &[Box<[u8]>], cands: u64, pos: u32) -> bool {
        let mut m = cands;
        while m != 0 {
            let c = m.trailing_zeros() as usize;
            m &= m - 1;
            if list[c].len() != pos as usize {
                return false;
            }
        }
        true
    }

    /// Feed one byte; false (with `h` unspecified) if it cannot extend a valid prefix.
    fn step(&self, base: &[Frame], h: &mut Head, b: u8) -> bool {
        match h.mode {
            Mode::Str | Mode::Key => self.string_byte(h, b),
            Mode::Num => match num_byte(h, b) {
                NumStep::Take => true,
                NumStep::Reject => false,
                NumStep::End => {
                    h.end_value();
                    self.step(base, h, b)
                }
            },
            Mode::Lit => {
                let lit = LITERALS[h.lit as usize];
                if lit[h.lpos as usize] != b {
                    return false;
                }
                h.lpos += 1;
                if h.lpos as usize == lit.len() {
                    h.end_value();
                }
                true
            }
            Mode::Enum => {
                let list = &self.nodes[h.node as usize].enum_lit;
                let (mut m, mut keep) = (h.cands, 0u64);
                while m != 0 {
                    let c = m.trailing_zeros();
                    m &= m - 1;
                    if list[c as usize].get(h.pos as usize) == Some(&b) {
                        keep |= 1 << c;
                    }
                }
                if keep != 0 {
                    h.cands = keep;
                    h.pos += 1;
                    if Self::all_complete(list, keep, h.pos) {
                        h.end_value();
                    }
                    return true;
                }
                // A complete number (`1` while `12` was possible) ends at a byte that is no part of it.
                if any_complete(list, h.cands, h.pos) {
                    h.end_value();
                    return self.step(base, h, b);
                }
                false
            }
            Mode::Done => false,
            _ => {
                if is_ws(b) {
                    if h.ws >= MAX_WS_RUN {
                        return false;
                    }
                    h.ws += 1;
                    return true;
                }
                h.ws = 0;
                match h.mode {
                    Mode::Value => self.start_value(h, h.node, b),
                    Mode::ArrFirst => {
                        if b == b']' {
                            h.pop(base)
                        } else {
                            let items = self.nodes[h.top.node as usize].items;
                            self.start_value(h, items, b)
                        }
                    }
                    Mode::ObjFirst => match b {
                        b'}' if self.nodes[h.top.node as usize].required == 0 => h.pop(base),
                        b'"' if self.can_add_key(&h.top) => {
                            self.start_key(h);
                            true
                        }
                        _ => false,
                    },
                    Mode::ObjNext => {
                        if b != b'"' {
                            return false;
                        }
                        self.start_key(h);
                        true
                    }
                    Mode::Colon => {
                        if b != b':' {
                            return false;
                        }
                        h.mode = Mode::Value;
                        true
                    }
                    Mode::After => match b {
                        b',' if h.top.obj => {
                            if !self.can_add_key(&h.top) {
                                return false;
                            }
                            h.mode = Mode::ObjNext;
                            true
                        }
                        b',' => {
                            h.mode = Mode::Value;
                            h.node = self.nodes[h.top.node as usize].items;
                            true
                        }
                        b'}' if h.top.obj => {
                            let req = self.nodes[h.top.node as usize].required;
                            req & !h.top.seen == 0 && h.pop(base)
                        }
                        b']' if !h.top.obj => h.pop(base),
                        _ => false,
                    },
                    _ => unreachable!("handled above"),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The recogniser

/// An incremental recogniser of one JSON value (optionally under a schema). Cloning copies the
/// open-container stack (small); stepping is a few branches per byte.
#[derive(Clone, Debug)]
pub struct JsonGrammar {
    schema: Arc<JsonSchema>,
    /// Open containers below `head.top`.
    stack: Vec<Frame>,
    head: Head,
}

impl Default for JsonGrammar {
    fn default() -> Self {
        JsonGrammar::new()
    }
}

impl JsonGrammar {
    /// Plain JSON.
    pub fn new() -> JsonGrammar {
        JsonGrammar::with_schema(Arc::new(JsonSchema::any()))
    }

    /// JSON that satisfies `schema` (as far as generation enforces it: see [`JsonSchema`]).
    pub fn with_schema(schema: Arc<JsonSchema>) -> JsonGrammar {
        let head = Head::new(schema.root);
        JsonGrammar { schema, stack: Vec::new(), head }
    }

    pub fn schema(&self) -> &Arc<JsonSchema> {
        &self.schema
    }

    fn commit(&mut self, h: Head) {
        self.stack.truncate(h.base_len as usize);
        self.stack.extend_from_slice(&h.ov[..h.ov_len as usize]);
        self.head = h;
        self.head.ov_len = 0;
        self.head.base_len = self.stack.len() as u8;
    }

    /// Feed one byte. False: it cannot extend the prefix to a valid one (the state is unchanged).
    pub fn push(&mut self, b: u8) -> bool {
        let mut h = self.head;
        if !self.schema.step(&self.stack, &mut h, b) {
            return false;
        }
        self.commit(h);
        true
    }

    /// Feed bytes, all or nothing: false if some byte is rejected (the state is then unchanged).
    pub fn push_bytes(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() <= OVERLAY {
            let mut h = self.head;
            if !bytes.iter().all(|&b| self.schema.step(&self.stack, &mut h, b)) {
                return false;
            }
            self.commit(h);
            return true;
        }
        let mut g = self.clone();
        if !bytes.iter().all(|&b| g.push(b)) {
            return false;
        }
        *self = g;
        true
    }

    /// Whether `bytes` would extend the prefix to a valid one (the state is not changed).
    pub fn accepts(&self, bytes: &[u8]) -> bool {
        if bytes.len() <= OVERLAY {
            let mut h = self.head;
            return bytes.iter().all(|&b| self.schema.step(&self.stack, &mut h, b));
        }
        self.clone().push_bytes(bytes)
    }

    /// The bytes so far are a whole value (a top-level number may still grow).
    pub fn is_complete(&self) -> bool {
        self.head.complete(&self.schema)
    }

    /// The value is closed: no byte may follow.
    pub fn is_done(&self) -> bool {
        self.head.mode == Mode::Done
    }

    /// Open arrays/objects.
    pub fn depth(&self) -> usize {
        self.head.depth as usize
    }
}

// ---------------------------------------------------------------------------------------------
// The constraint

/// Whether a vocabulary entry is a control token rather than text: the `<｜...｜>` family and
/// `｜DSML｜` (full-width bars), `<|...|>`, `<think>`, `</think>`, `<dsml:`, `</dsml:`. (The
/// full-width bar alone is ordinary text.)
pub fn looks_special(bytes: &[u8]) -> bool {
    const BAR: &[u8] = "｜".as_bytes();
    let has_bar = bytes.windows(BAR.len()).any(|w| w == BAR);
    (has_bar && bytes != BAR)
        || (bytes.len() >= 4 && bytes.starts_with(b"<|") && bytes.ends_with(b"|>"))
        || matches!(bytes, b"<think>" | b"</think>" | b"<dsml:" | b"</dsml:")
}

/// The vocabulary sorted by bytes (an implicit trie): tokens sharing a prefix are adjacent, so
/// the state after a shared prefix is computed once, and a rejected prefix skips every token
/// that starts with it. The bytes are stored contiguously in that order (sequential reads).
struct VocabIndex {
    /// Text tokens (non-empty, not special), sorted by their bytes.
    order: Vec<u32>,
    /// Common prefix length with the previous entry of `order`.
    lcp: Vec<u8>,
    /// Bytes of entry i: `data[offs[i]..offs[i + 1]]`.
    offs: Vec<u32>,
    data: Vec<u8>,
    /// Entry i is whole UTF-8 chars with no `"`, `\` or control char: inside a string it
    /// leaves the state as it is.
    plain: Vec<bool>,
    max_len: usize,
}

use super::Vocab;

impl VocabIndex {
    fn build(vocab: &[Box<[u8]>]) -> VocabIndex {
        // Tokens longer than 255 bytes are left out (no real token is).
        let mut order: Vec<u32> = (0..vocab.len() as u32)
            .filter(|&i| {
                let b = &vocab[i as usize];
                !b.is_empty() && b.len() < 256 && !looks_special(b)
            })
            .collect();
        order.sort_unstable_by(|&a, &b| vocab[a as usize].cmp(&vocab[b as usize]));
        let mut lcp = Vec::with_capacity(order.len());
        let mut offs = Vec::with_capacity(order.len() + 1);
        let mut data = Vec::new();
        let mut plain = Vec::with_capacity(order.len());
        let mut prev: &[u8] = &[];
        let mut max_len = 0;
        for &t in &order {
            let b = &vocab[t as usize];
            lcp.push(prev.iter().zip(b.iter()).take_while(|(x, y)| x == y).count() as u8);
            offs.push(data.len() as u32);
            data.extend_from_slice(b);
            plain.push(std::str::from_utf8(b).is_ok() && b.iter().all(|&c| c >= 0x20 && c != b'"' && c != b'\\'));
            max_len = max_len.max(b.len());
            prev = b;
        }
        offs.push(data.len() as u32);
        VocabIndex { order, lcp, offs, data, plain, max_len }
    }

    /// One index per vocabulary table (by `Arc` identity), built on first use.
    fn shared(vocab: &Vocab) -> Arc<VocabIndex> {
        static CACHE: super::VocabCache<VocabIndex> = Mutex::new(Vec::new());
        super::per_vocab(&CACHE, vocab, |v| VocabIndex::build(v))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before `start_after`: unconstrained.
    Waiting,
    Active,
    /// EOS was sampled.
    Finished,
    /// A token the grammar rejects was advanced (only possible without `mask`): EOS only.
    Failed,
}

/// Constrains generation to one JSON value (optionally matching a schema), then EOS.
pub struct JsonConstraint {
    vocab: Vocab,
    index: Arc<VocabIndex>,
    eos: u32,
    start_after: Option<u32>,
    phase: Phase,
    grammar: JsonGrammar,
    forbidden: Vec<u32>,
    heads: Vec<Head>,
    keep: Vec<bool>,
}

impl JsonConstraint {
    /// `vocab`: the bytes of each token id (`Tokenizer::token_bytes_table`); `eos`: the id that
    /// ends the output; `start_after`: a token (`</think>` in thinking mode) before which
    /// nothing is constrained; `schema`: a JSON Schema the value must satisfy (None: any JSON
    /// value). Tokens whose bytes [`looks_special`] never appear inside the JSON.
    pub fn new(vocab: Vocab, eos: u32, start_after: Option<u32>, schema: Option<Value>) -> JsonConstraint {
        let schema = schema.map(|s| JsonSchema::compile(&s)).unwrap_or_default();
        let index = VocabIndex::shared(&vocab);
        JsonConstraint {
            vocab,
            index,
            eos,
            start_after,
            phase: if start_after.is_some() { Phase::Waiting } else { Phase::Active },
            grammar: JsonGrammar::with_schema(Arc::new(schema)),
            forbidden: Vec::new(),
            heads: Vec::new(),
            keep: Vec::new(),
        }
    }

    /// Build the vocabulary index for `vocab` now (~0.1 s for 129k tokens; otherwise the first
    /// constraint over that table builds it). It is kept while the table is alive.
    pub fn prepare_vocab(vocab: &Vocab) {
        VocabIndex::shared(vocab);
    }

    /// Also forbid these ids inside the JSON (e.g. every id the tokenizer marks special).
    pub fn forbid_tokens(mut self, ids: impl IntoIterator<Item = u32>) -> JsonConstraint {
        self.forbidden.extend(ids);
        self
    }

    pub fn grammar(&self) -> &JsonGrammar {
        &self.grammar
    }

    /// The JSON value is complete.
    pub fn is_complete(&self) -> bool {
        self.phase == Phase::Active && self.grammar.is_complete()
    }

    /// Whether the JSON part has begun (`start_after` was sampled, or there is none).
    pub fn is_active(&self) -> bool {
        self.phase == Phase::Active
    }

    /// Mark in `keep` every token whose bytes extend the current prefix.
    fn scan(&mut self) {
        let g = &self.grammar;
        if g.is_done() {
            return;
        }
        let (schema, base, idx) = (&*g.schema, &g.stack[..], &*self.index);
        // Inside a string with nothing pending, plain text tokens change nothing: accepted as is.
        let h0 = &g.head;
        let in_text = matches!(h0.mode, Mode::Str | Mode::Key) && !h0.matching && h0.esc == 0 && h0.need == 0 && h0.hi_sur == 0;
        let heads = &mut self.heads;
        heads.clear();
        heads.resize(idx.max_len + 1, g.head);
        let keep = &mut self.keep;
        // heads[k]: the state after the first k bytes of the current token, for k <= valid.
        let mut valid = 0usize;
        // Tokens whose first `dead` bytes equal the last rejected prefix are rejected too.
        let mut dead = usize::MAX;
        for (i, (&t, &l)) in idx.order.iter().zip(&idx.lcp).enumerate() {
            let l = l as usize;
            valid = valid.min(l);
            if l >= dead {
                continue;
            }
            dead = usize::MAX;
            let ok = if in_text && idx.plain[i] {
                true
            } else {
                let bytes = &idx.data[idx.offs[i] as usize..idx.offs[i + 1] as usize];
                let mut ok = true;
                while valid < bytes.len() {
                    let mut h = heads[valid];
                    if !schema.step(base, &mut h, bytes[valid]) {
                        dead = valid + 1;
                        ok = false;
                        break;
                    }
                    valid += 1;
                    heads[valid] = h;
                }
                ok
            };
            if ok {
                if let Some(k) = keep.get_mut(t as usize) {
                    *k = true;
                }
            }
        }
    }
}

impl Constraint for JsonConstraint {
    fn mask(&mut self, logits: &mut [f32]) {
        if self.phase == Phase::Waiting {
            // The reasoning is free, but the turn may not end before the JSON content: EOS
            // is held back until `start_after` has come (unless it is the only choice).
            let eos = self.eos as usize;
            if eos < logits.len() && logits.iter().enumerate().any(|(i, l)| i != eos && l.is_finite()) {
                logits[eos] = f32::NEG_INFINITY;
            }
            return;
        }
        self.keep.clear();
        self.keep.resize(logits.len(), false);
        if self.phase == Phase::Active {
            self.scan();
            for &t in &self.forbidden {
                if let Some(k) = self.keep.get_mut(t as usize) {
                    *k = false;
                }
            }
        }
        let complete = self.is_complete();
        let eos = self.eos as usize;
        if eos < self.keep.len() {
            // EOS ends the output only after a whole value (or when nothing else can follow).
            self.keep[eos] = complete || self.phase != Phase::Active || !self.keep.iter().any(|&k| k);
        }
        for (x, &k) in logits.iter_mut().zip(&self.keep) {
            if !k {
                *x = f32::NEG_INFINITY;
            }
        }
    }

    fn advance(&mut self, token: u32) {
        match self.phase {
            Phase::Waiting => {
                if Some(token) == self.start_after {
                    self.phase = Phase::Active;
                }
            }
            Phase::Active => {
                if token == self.eos {
                    self.phase = Phase::Finished;
                    return;
                }
                let ok = !self.forbidden.contains(&token)
                    && self.vocab.get(token as usize).is_some_and(|b| !looks_special(b) && self.grammar.push_bytes(b));
                if !ok {
                    self.phase = Phase::Failed;
                }
            }
            Phase::Finished | Phase::Failed => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full(schema: Option<&Value>, s: &str) -> bool {
        let mut g = match schema {
            Some(s) => JsonGrammar::with_schema(Arc::new(JsonSchema::compile(s))),
            None => JsonGrammar::new(),
        };
        s.bytes().all(|b| g.push(b)) && g.is_complete()
    }

    #[test]
    fn plain_values() {
        for s in [
            "0", "-0", "12", "-3.25e+10", "1E5", "0.5", "true", "false", "null", "\"\"", "\"a\\n\\u00e9\\ud83d\\ude00\"",
            "[]", "{}", " [1, [2, {\"a\": null}], \"x\"]", "{\"a\":{\"b\":[true,false]}}", "\"é😀\"",
        ] {
            assert!(full(None, s), "{s}");
            assert!(serde_json::from_str::<Value>(s).is_ok(), "{s}");
        }
        for s in [
            "01", "-", "1.", "1e", ".5", "+1", "tru", "nul", "[1,]", "{,}", "{\"a\"}", "{\"a\":}", "[1 2]", "\"\\x\"",
            "\"\\ude00\"", "\"\\ud83d\"", "\"\\ud83dx\"", "\"a\u{1}\"", "{'a':1}", "[1]]", "1 2", "{\"a\":1,}",
        ] {
            assert!(!full(None, s), "{s}");
        }
        // Invalid UTF-8 inside a string.
        let mut g = JsonGrammar::new();
        assert!(g.push(b'"'));
        assert!(!g.accepts(&[0xC0]));
        assert!(!g.accepts(&[0xE0, 0x80]));
        assert!(!g.accepts(&[0xED, 0xA0]));
        assert!(g.accepts(&[0xE2, 0x82, 0xAC]));
        assert!(!g.accepts(&[0x80]));
    }

    #[test]
    fn completion_and_done() {
        let mut g = JsonGrammar::new();
        assert!(g.push_bytes(b"12"));
        assert!(g.is_complete() && !g.is_done());
        assert!(g.accepts(b"3") && !g.accepts(b" ") && !g.accepts(b","));
        let mut g = JsonGrammar::new();
        assert!(g.push_bytes(b"  {\"a\": [1]}"));
        assert!(g.is_done() && g.is_complete());
        assert!(!g.accepts(b" "));
        let mut g = JsonGrammar::new();
        assert!(g.push_bytes(b"[1"));
        assert!(!g.is_complete());
        assert!(!g.push_bytes(b",]"), "all or nothing");
        assert!(g.push_bytes(b"]"));
    }

    #[test]
    fn limits() {
        let deep = "[".repeat(MAX_DEPTH);
        let mut g = JsonGrammar::new();
        assert!(g.push_bytes(deep.as_bytes()));
        assert!(!g.accepts(b"["));
        assert!(g.accepts(b"1"));
        let mut g = JsonGrammar::new();
        assert!(g.push_bytes(" ".repeat(MAX_WS_RUN as usize).as_bytes()));
        assert!(!g.accepts(b" "));
        // Magnitudes stay finite for serde_json.
        let mut g = JsonGrammar::new();
        assert!(g.push_bytes(b"1e300"));
        assert!(!g.accepts(b"0"));
        assert!(JsonGrammar::new().accepts(b"1e-00000099"));
        assert!(!JsonGrammar::new().accepts(b"1e-000000099"), "8 exponent digits at most");
        assert!(serde_json::from_str::<Value>("1e-999").is_ok());
        assert!(serde_json::from_str::<Value>("1e-00000999").is_ok());
        let mut g = JsonGrammar::new();
        assert!(g.push_bytes(b"9e307"));
        assert!(g.is_complete());
        assert!(!JsonGrammar::new().accepts(b"9e308"));
        assert!(JsonGrammar::new().accepts(b"1e-99999999"));
        assert!(serde_json::from_str::<Value>("1e-99999999").is_ok());
        assert!(!JsonGrammar::new().accepts(b"1e-999999999"));
        assert!(!JsonGrammar::new().accepts(b"1.5e308"), "finite, but past the digit-count bound");
        let big = "9".repeat(308);
        assert!(full(None, &big));
        assert!(!JsonGrammar::new().accepts(format!("{big}9").as_bytes()));
    }

    #[test]
    fn schema_object() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer"},
                "unit": {"enum": ["celsius", "fahrenheit", 3, null]},
                "loc": {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"], "additionalProperties": false},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["name", "age"],
            "additionalProperties": false
        });
        let ok = [
            r#"{"name":"a","age":3}"#,
            r#"{"age":-3,"name":"\u0061b"}"#,
            r#"{"name":"a","age":0,"unit":"celsius","loc":{"lat":1.5},"tags":["x"]}"#,
            r#"{"name":"a","age":0,"unit":"fahr\u0065nheit"}"#,
            r#"{"name":"a","age":0,"unit":3}"#,
            r#"{"name":"a","age":0,"unit":null}"#,
            r#"{"n\u0061me":"a","age":0}"#,
        ];
        for s in ok {
            assert!(full(Some(&schema), s), "{s}");
            validate(&serde_json::from_str(s).unwrap(), &schema).unwrap();
        }
        let bad = [
            r#"{"name":"a"}"#,
            r#"{"name":"a","age":1.5}"#,
            r#"{"name":"a","age":1e2}"#,
            r#"{"name":1,"age":1}"#,
            r#"{"name":"a","age":1,"other":1}"#,
            r#"{"name":"a","age":1,"name":"b"}"#,
            r#"{"name":"a","age":1,"unit":"kelvin"}"#,
            r#"{"name":"a","age":1,"unit":4}"#,
            r#"{"name":"a","age":1,"loc":{}}"#,
            r#"{"name":"a","age":1,"tags":[1]}"#,
            r#"[]"#,
        ];
        for s in bad {
            assert!(!full(Some(&schema), s), "{s}");
            if let Ok(v) = serde_json::from_str::<Value>(s) {
                if s != r#"{"name":"a","age":1e2}"# && !s.contains(r#""name":"b""#) {
                    assert!(validate(&v, &schema).is_err(), "{s}");
                }
            }
        }
        // No dead ends: `,` is refused when no key may follow.
        let mut g = JsonGrammar::with_schema(Arc::new(JsonSchema::compile(&json!({
            "type": "object", "properties": {"a": {"type": "boolean"}}, "additionalProperties": false
        }))));
        assert!(g.push_bytes(br#"{"a":true"#));
        assert!(!g.accepts(b","));
        assert!(g.accepts(b"}"));
        let g = JsonGrammar::with_schema(Arc::new(JsonSchema::compile(&json!({"type":"object","additionalProperties":false}))));
        assert!(!g.accepts(b"{\""));
        assert!(g.accepts(b"{}"));
    }

    #[test]
    fn schema_keys_with_additional_properties() {
        let schema = json!({"type":"object","properties":{"ab":{"type":"integer"}, "😀":{"type":"null"}}});
        assert!(full(Some(&schema), r#"{"ab":1,"abc":"x","a":[]}"#));
        assert!(!full(Some(&schema), r#"{"ab":"x"}"#));
        assert!(!full(Some(&schema), r#"{"a\u0062":"x"}"#), "escaped spelling of a property is that property");
        assert!(!full(Some(&schema), r#"{"ab":1,"ab":2}"#), "duplicate");
        assert!(full(Some(&schema), r#"{"\ud83d\ude00":null}"#));
        assert!(!full(Some(&schema), r#"{"\ud83d\ude00":1}"#));
        assert!(full(Some(&schema), r#"{"\ud83d\ude01":1}"#));
        assert!(full(Some(&schema), r#"{"a\n":1}"#));
        // No escape where no property has another char (no dead end inside the escape).
        let strict = json!({"type":"object","properties":{"unit":{"enum":["c", "f"]}},"additionalProperties":false});
        let mut g = JsonGrammar::with_schema(Arc::new(JsonSchema::compile(&strict)));
        assert!(g.push_bytes(br#"{"unit"#));
        assert!(!g.accepts(b"\\"));
        assert!(g.push_bytes(br#"":"#));
        assert!(g.accepts(b"\"\\u0063"));
        assert!(g.push_bytes(br#""c"#));
        assert!(!g.accepts(b"\\"));
        assert!(g.accepts(b"\""));
    }

    #[test]
    fn schema_types_and_enums() {
        let s = json!({"type": ["string", "null"]});
        assert!(full(Some(&s), "null") && full(Some(&s), "\"x\"") && !full(Some(&s), "1"));
        let s = json!({"type": "integer"});
        assert!(full(Some(&s), "-12") && !full(Some(&s), "1.0") && !full(Some(&s), "true"));
        let s = json!({"enum": [1, 12, 1.5, "a", [1, {"b": 2}], true]});
        for ok in ["1", "12", "1.5", "\"a\"", "[1,{\"b\":2}]", "true"] {
            assert!(full(Some(&s), ok), "{ok}");
        }
        for bad in ["2", "13", "1.6", "\"b\"", "[1, {\"b\":2}]", "false", "[1]"] {
            assert!(!full(Some(&s), bad), "{bad}");
        }
        let s = json!({"type": "array", "items": {"enum": [1, 12]}});
        assert!(full(Some(&s), "[1,12, 1 ,12]"));
        assert!(!full(Some(&s), "[123]"));
        let s = json!({"const": "x"});
        assert!(full(Some(&s), "\"x\"") && !full(Some(&s), "\"y\""));
        // Unsupported keywords: plain JSON for that sub-value.
        let s = json!({"type":"object","properties":{"a":{"anyOf":[{"type":"string"}]}, "b": {"type":"string","pattern":"^x"}},"additionalProperties":false});
        assert!(full(Some(&s), r#"{"a":[1,2],"b":3}"#));
        assert!(!full(Some(&s), r#"{"c":1}"#));
        validate(&json!({"a":[1,2],"b":3}), &s).unwrap();
        // An enum none of whose values fit the type is unsatisfiable: plain JSON.
        assert!(full(Some(&json!({"type":"string","enum":[1]})), "[]"));
    }

    #[test]
    fn validate_paths() {
        let schema = json!({
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"enum": ["c", "f"]},
                "opts": {"type": "object", "properties": {"deep": {"type": "array", "items": {"type": "boolean"}}}},
                "maybe": {"type": ["number", "null"]}
            },
            "required": ["location"],
            "additionalProperties": false
        });
        let err = |v: Value| validate(&v, &schema).unwrap_err();
        assert_eq!(err(json!({"location": 1})), "$.location: expected string");
        assert_eq!(err(json!({})), "$: missing required property \"location\"");
        assert_eq!(err(json!({"location": "x", "days": 1.5})), "$.days: expected integer");
        assert_eq!(err(json!({"location": "x", "unit": "k"})), "$.unit: expected one of \"c\", \"f\"");
        assert_eq!(err(json!({"location": "x", "opts": {"deep": [true, 1]}})), "$.opts.deep[1]: expected boolean");
        assert_eq!(err(json!({"location": "x", "extra key": 1})), "$[\"extra key\"]: unexpected property (additionalProperties is false)");
        assert_eq!(err(json!({"location": "x", "maybe": "s"})), "$.maybe: expected number or null");
        assert_eq!(err(json!([1])), "$: expected object");
        validate(&json!({"location": "x", "days": 2.0, "maybe": null, "opts": {"deep": [], "other": 1}}), &schema).unwrap();
        validate(&json!({"location": "x", "maybe": 1.5}), &schema).unwrap();
        // Non-object schemas constrain nothing.
        validate(&json!(1), &json!(true)).unwrap();
        validate(&json!(1), &json!({})).unwrap();
    }

    #[test]
    fn special_tokens() {
        assert!(looks_special("<｜end▁of▁sentence｜>".as_bytes()));
        assert!(looks_special("｜DSML｜".as_bytes()));
        assert!(looks_special(b"<|EOT|>"));
        assert!(looks_special(b"</think>"));
        assert!(!looks_special("｜".as_bytes()));
        assert!(!looks_special(b"<|"));
        assert!(!looks_special(b"{\""));
    }

    /// A toy vocabulary: every byte, plus a few multi-byte tokens.
    fn toy_vocab() -> Vocab {
        let mut v: Vec<Box<[u8]>> = (0..=255u8).map(|b| vec![b].into_boxed_slice()).collect();
        for s in ["<eos>", "{\"", "\":", "\"}", "true", "]]", "[[[", "  ", "</think>", "<｜User｜>", "\"\n"] {
            v.push(s.as_bytes().into());
        }
        Arc::new(v)
    }

    #[test]
    fn constraint_masks() {
        let vocab = toy_vocab();
        let id = |s: &str| vocab.iter().position(|b| **b == *s.as_bytes()).unwrap() as u32;
        let (eos, think_end) = (id("<eos>"), id("</think>"));
        let mut c = JsonConstraint::new(vocab.clone(), eos, Some(think_end), None);
        let mut logits = vec![0.0; vocab.len()];
        c.mask(&mut logits);
        assert!(logits.iter().enumerate().all(|(i, x)| x.is_finite() == (i != eos as usize)), "unconstrained before </think>, but no EOS");
        c.advance(id("x"));
        c.advance(think_end);
        let allowed = |c: &mut JsonConstraint| {
            let mut l = vec![0.0; vocab.len()];
            c.mask(&mut l);
            (0..vocab.len()).filter(|&i| l[i].is_finite()).map(|i| String::from_utf8_lossy(&vocab[i]).into_owned()).collect::<Vec<_>>()
        };
        let a = allowed(&mut c);
        assert!(a.contains(&" ".to_string()) && a.contains(&"{\"".to_string()) && a.contains(&"[[[".to_string()));
        assert!(!a.contains(&"<eos>".to_string()) && !a.contains(&"}".to_string()) && !a.contains(&"</think>".to_string()));
        for t in ["{\"", "a", "\":", "true", "}"] {
            c.advance(id(t));
        }
        assert!(c.is_complete());
        assert_eq!(allowed(&mut c), vec!["<eos>".to_string()]);
        c.advance(eos);

        // Inside a string: special tokens are refused, text is not.
        let mut c = JsonConstraint::new(vocab.clone(), eos, None, None);
        c.advance(id("\""));
        let a = allowed(&mut c);
        assert!(!a.contains(&"<｜User｜>".to_string()) && !a.contains(&"\n".to_string()) && !a.contains(&"\"\n".to_string()));
        assert!(a.contains(&"\"".to_string()) && a.contains(&"a".to_string()) && !a.contains(&"\":".to_string()));
        let mut c = JsonConstraint::new(vocab.clone(), eos, None, None).forbid_tokens([id("a")]);
        c.advance(id("\""));
        assert!(!allowed(&mut c).contains(&"a".to_string()));
    }
}

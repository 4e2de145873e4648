//! The released checkpoint, loaded as released (`spec/checkpoint.md`): safetensors files,
//! memory-mapped once each, every header validated on open, tensors handed out zero-copy and
//! checked (dtype, shape, scale consistency, NaN scale codes) when requested.
//!
//! Layouts accepted by [`Checkpoint::open`]:
//! - `DIR/model.safetensors.index.json` (`weight_map`: tensor name -> shard file in DIR): only the
//!   shards it names are opened, and every indexed tensor must really be in its shard;
//! - else `DIR/model.safetensors`: that file alone (other `*.safetensors` beside it, such as test
//!   data, are not weights);
//! - else every `DIR/*.safetensors`; a tensor name in two files is an error.
//! - a path to a single `.safetensors` file is also accepted.
//!
//! The safetensors header (8-byte little-endian length, then a JSON object
//! `name -> {dtype, shape, data_offsets}` plus an optional `__metadata__`) is parsed here rather
//! than with the `safetensors` crate so that every error can name the file, the tensor and what
//! was expected.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use memmap2::Mmap;
use serde_json::Value;

/// Element types of safetensors. `Debug` / `Display` print the safetensors names (`F8_E4M3`).
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    BOOL,
    U8,
    I8,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    F64,
    I64,
    U64,
    F8E4M3,
    F8E5M2,
    F8E8M0,
}

impl DType {
    pub const ALL: [DType; 16] = [
        DType::BOOL,
        DType::U8,
        DType::I8,
        DType::I16,
        DType::U16,
        DType::F16,
        DType::BF16,
        DType::I32,
        DType::U32,
        DType::F32,
        DType::F64,
        DType::I64,
        DType::U64,
        DType::F8E4M3,
        DType::F8E5M2,
        DType::F8E8M0,
    ];

    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::BOOL | DType::U8 | DType::I8 | DType::F8E4M3 | DType::F8E5M2 | DType::F8E8M0 => {
                1
            }
            DType::I16 | DType::U16 | DType::F16 | DType::BF16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }

    /// The safetensors name.
    pub fn name(self) -> &'static str {
        match self {
            DType::BOOL => "BOOL",
            DType::U8 => "U8",
            DType::I8 => "I8",
            DType::I16 => "I16",
            DType::U16 => "U16",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::I32 => "I32",
            DType::U32 => "U32",
            DType::F32 => "F32",
            DType::F64 => "F64",
            DType::I64 => "I64",
            DType::U64 => "U64",
            DType::F8E4M3 => "F8_E4M3",
            DType::F8E5M2 => "F8_E5M2",
            DType::F8E8M0 => "F8_E8M0",
        }
    }

    /// From the safetensors name.
    pub fn from_name(s: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == s)
    }
}

impl fmt::Debug for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone)]
enum Repr {
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        end: usize,
    },
    Owned(Arc<Vec<u8>>),
    /// From [`Bytes::anon`]: written once, then only read (no `&mut` escapes).
    Anon { map: Arc<memmap2::MmapMut>, len: usize },
}

/// Bytes of one tensor, borrowed from a shared memory map (zero-copy) or owned. Cheap to clone.
#[derive(Clone)]
pub struct Bytes(Repr);

impl Bytes {
    pub fn from_vec(v: Vec<u8>) -> Bytes {
        Bytes(Repr::Owned(Arc::new(v)))
    }

    /// `len` bytes written by `fill`, in their own page-aligned anonymous mapping, on Linux
    /// advised for transparent huge pages (before the first write, so `madvise` mode gives them).
    /// For generated weights: FP4 experts in heap `Vec`s, packed beside their scales, streamed
    /// 10-40% slower in `bench/examples/call_probe.rs` than the same bytes each in its own
    /// mapping (page size alone does not explain it: one huge-page mapping holding a whole
    /// file was as slow). Falls back to a `Vec` if the mapping fails.
    pub fn anon(len: usize, fill: impl FnOnce(&mut [u8])) -> Bytes {
        let Ok(mut m) = memmap2::MmapMut::map_anon(len.max(1)) else {
            let mut v = vec![0u8; len];
            fill(&mut v);
            return Bytes::from_vec(v);
        };
        #[cfg(target_os = "linux")]
        let _ = m.advise(memmap2::Advice::HugePage); // a hint: refused, it is plain pages
        fill(&mut m[..len]);
        Bytes(Repr::Anon { map: Arc::new(m), len })
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Bytes {
        Bytes::from_vec(v)
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Bytes) -> bool {
        **self == **other
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Mapped { map, start, end } => &map[*start..*end],
            Repr::Owned(v) => v,
            Repr::Anon { map, len } => &map[..*len],
        }
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.0 {
            Repr::Mapped { .. } => "mapped",
            Repr::Owned(_) => "owned",
            Repr::Anon { .. } => "anonymous map",
        };
        write!(f, "Bytes({} bytes, {kind})", self.len())
    }
}

/// One tensor as stored: its bytes are the raw little-endian elements.
#[derive(Clone, Debug)]
pub struct TensorRef {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// The file holding it.
    pub file: PathBuf,
    pub bytes: Bytes,
}

impl TensorRef {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A missing directory, an unreadable file.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no model.safetensors.index.json, model.safetensors or *.safetensors file", dir.display())]
    NoWeights { dir: PathBuf },
    #[error("{}: bad header: {msg}", path.display())]
    BadHeader { path: PathBuf, msg: String },
    #[error("{}: truncated: header says tensors end at byte {needed} but the file has {len} bytes", path.display())]
    Truncated {
        path: PathBuf,
        needed: u64,
        len: u64,
    },
    #[error("{}: bad index: {msg}", path.display())]
    BadIndex { path: PathBuf, msg: String },
    /// The index names a shard that cannot be opened.
    #[error("{}: weight_map puts tensor '{tensor}' in {}, which cannot be opened: {source}", index.display(), shard.display())]
    MissingShard {
        index: PathBuf,
        tensor: String,
        shard: PathBuf,
        source: std::io::Error,
    },
    /// The index says a tensor is in a shard that does not hold it.
    #[error("{}: weight_map puts tensor '{tensor}' in {}, but that file does not contain it{found_in}", index.display(), shard.display())]
    NotInShard {
        index: PathBuf,
        tensor: String,
        shard: PathBuf,
        found_in: String,
    },
    #[error("tensor '{name}' is in two files: {} and {}", first.display(), second.display())]
    Duplicate {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("tensor '{name}' is not in the checkpoint ({})", dir.display())]
    Missing { name: String, dir: PathBuf },
    #[error("tensor '{name}' in {}: expected dtype {expected}, found {found}", file.display())]
    WrongDtype {
        name: String,
        file: PathBuf,
        expected: String,
        found: DType,
    },
    #[error("tensor '{name}' in {}: expected shape {expected:?}{note}, found {found:?}", file.display())]
    WrongShape {
        name: String,
        file: PathBuf,
        expected: Vec<usize>,
        found: Vec<usize>,
        note: String,
    },
    #[error("tensor '{name}' in {}: scale byte 0xFF (NaN) at index {index}", file.display())]
    NanScale {
        name: String,
        file: PathBuf,
        index: usize,
    },
    /// A value that cannot be converted (e.g. an I64 outside the i32 range).
    #[error("tensor '{name}' in {}: {msg}", file.display())]
    BadValue {
        name: String,
        file: PathBuf,
        msg: String,
    },
    /// The request itself is impossible (e.g. an FP4 weight whose input size is not a multiple of 32).
    #[error("tensor '{name}': {msg}")]
    BadRequest { name: String, msg: String },
}

/// One shard, mapped once.
struct Shard {
    path: PathBuf,
    map: Arc<Mmap>,
}

/// Where a tensor's bytes are.
enum Source {
    /// Absolute byte range in a shard's map.
    Shard {
        shard: usize,
        start: usize,
        end: usize,
    },
    /// Owned by the checkpoint ([`Checkpoint::from_tensors`]).
    Memory(Bytes),
}

/// One tensor: dtype, shape and where its bytes are.
struct Entry {
    dtype: DType,
    shape: Vec<usize>,
    source: Source,
}

impl Entry {
    fn shard(&self) -> Option<usize> {
        match self.source {
            Source::Shard { shard, .. } => Some(shard),
            Source::Memory(_) => None,
        }
    }
}

/// The `file` of an in-memory checkpoint's tensors and its `dir` (no file holds them).
pub const IN_MEMORY: &str = "<memory>";

pub struct Checkpoint {
    dir: PathBuf,
    shards: Vec<Shard>,
    entries: BTreeMap<String, Entry>,
    used: Mutex<BTreeSet<String>>,
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("dir", &self.dir)
            .field(
                "shards",
                &self.shards.iter().map(|s| &s.path).collect::<Vec<_>>(),
            )
            .field("tensors", &self.entries.len())
            .finish()
    }
}

const INDEX_FILE: &str = "model.safetensors.index.json";
const SINGLE_FILE: &str = "model.safetensors";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LoadError + '_ {
    move |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One tensor of a header: name, dtype, shape, byte range.
type HeaderEntry = (String, DType, Vec<usize>, usize, usize);

/// Map a file and validate its header; returns the shard and its tensors.
fn open_shard(path: &Path) -> Result<(Shard, Vec<HeaderEntry>), LoadError> {
    let file = File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    let bad = |msg: String| LoadError::BadHeader {
        path: path.to_path_buf(),
        msg,
    };
    if len < 8 {
        return Err(bad(format!(
            "the file has {len} bytes, too few for the 8-byte header length"
        )));
    }
    // SAFETY: the map is read-only; like every mmap-based loader we rely on the weight files not
    // being modified while the engine runs.
    let map = unsafe { Mmap::map(&file) }.map_err(io(path))?;
    let data: &[u8] = &map;
    let mut n8 = [0u8; 8];
    n8.copy_from_slice(&data[..8]);
    let hlen = u64::from_le_bytes(n8);
    if hlen > len - 8 {
        return Err(bad(format!(
            "header length {hlen} goes beyond the end of the file ({len} bytes)"
        )));
    }
    let hlen = hlen as usize;
    let base = 8 + hlen;
    let header: Value =
        serde_json::from_slice(&data[8..base]).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let obj = header
        .as_object()
        .ok_or_else(|| bad("the header is not a JSON object".to_string()))?;
    let data_len = (len as usize) - base;
    let mut tensors = Vec::with_capacity(obj.len());
    let mut max_end = 0usize;
    for (name, v) in obj {
        if name == "__metadata__" {
            continue;
        }
        let t = v
            .as_object()
            .ok_or_else(|| bad(format!("tensor '{name}': expected an object, found {v}")))?;
        let dtype = match t.get("dtype") {
            Some(Value::String(s)) => DType::from_name(s)
                .ok_or_else(|| bad(format!("tensor '{name}': unknown dtype '{s}'")))?,
            other => {
                let found = other.map_or("nothing".to_string(), Value::to_string);
                return Err(bad(format!(
                    "tensor '{name}': 'dtype' must be a string, found {found}"
                )));
            }
        };
        let shape: Vec<usize> = match t.get("shape") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| {
                    bad(format!(
                        "tensor '{name}': bad shape {}",
                        Value::Array(a.clone())
                    ))
                })?,
            other => {
                let found = other.map_or("nothing".to_string(), Value::to_string);
                return Err(bad(format!(
                    "tensor '{name}': 'shape' must be a list, found {found}"
                )));
            }
        };
        let offsets = match t.get("data_offsets") {
            Some(Value::Array(a)) if a.len() == 2 => {
                match (
                    a[0].as_u64().and_then(|x| usize::try_from(x).ok()),
                    a[1].as_u64().and_then(|x| usize::try_from(x).ok()),
                ) {
                    (Some(s), Some(e)) => Some((s, e)),
                    _ => None,
                }
            }
            _ => None,
        };
        let (s, e) = offsets.ok_or_else(|| {
            let found = t
                .get("data_offsets")
                .map_or("nothing".to_string(), Value::to_string);
            bad(format!(
                "tensor '{name}': 'data_offsets' must be two byte offsets, found {found}"
            ))
        })?;
        let nbytes = shape
            .iter()
            .try_fold(dtype.size_in_bytes(), |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| bad(format!("tensor '{name}': shape {shape:?} is too large")))?;
        if e < s {
            return Err(bad(format!(
                "tensor '{name}': data_offsets [{s}, {e}] end before they start"
            )));
        }
        if e - s != nbytes {
            return Err(bad(format!(
                "tensor '{name}': data_offsets [{s}, {e}] hold {} bytes but {dtype} {shape:?} needs {nbytes}",
                e - s
            )));
        }
        max_end = max_end.max(e);
        tensors.push((name.clone(), dtype, shape, s, e));
    }
    if max_end > data_len {
        return Err(LoadError::Truncated {
            path: path.to_path_buf(),
            needed: (base + max_end) as u64,
            len,
        });
    }
    // No two tensors may share bytes.
    let mut ranges: Vec<(usize, usize, &str)> = tensors
        .iter()
        .filter(|t| t.4 > t.3)
        .map(|t| (t.3, t.4, t.0.as_str()))
        .collect();
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(bad(format!(
                "tensors '{}' [{}, {}] and '{}' [{}, {}] overlap",
                w[0].2, w[0].0, w[0].1, w[1].2, w[1].0, w[1].1
            )));
        }
    }
    let tensors = tensors
        .into_iter()
        .map(|(n, d, sh, s, e)| (n, d, sh, base + s, base + e))
        .collect();
    Ok((
        Shard {
            path: path.to_path_buf(),
            map: Arc::new(map),
        },
        tensors,
    ))
}

impl Checkpoint {
    /// DIR with `model.safetensors`, or shards + `model.safetensors.index.json` (weight_map: name
    /// -> shard file; every shard memory-mapped once). With no index and no `model.safetensors`,
    /// every `*.safetensors` file (a name in two files is an error). A path to one
    /// `.safetensors` file is also accepted. Validates every header fully and, with an index,
    /// that every indexed tensor is really in its shard.
    pub fn open(dir: &Path) -> Result<Checkpoint, LoadError> {
        let meta = std::fs::metadata(dir).map_err(io(dir))?;
        if meta.is_file() {
            let parent = dir.parent().map(Path::to_path_buf).unwrap_or_default();
            return Self::from_files(parent, vec![dir.to_path_buf()]);
        }
        let index = dir.join(INDEX_FILE);
        if index.is_file() {
            return Self::open_indexed(dir, &index);
        }
        let single = dir.join(SINGLE_FILE);
        if single.exists() {
            return Self::from_files(dir.to_path_buf(), vec![single]);
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path.extension().is_some_and(|e| e == "safetensors") && path.is_file() {
                files.push(path);
            }
        }
        if files.is_empty() {
            return Err(LoadError::NoWeights {
                dir: dir.to_path_buf(),
            });
        }
        files.sort();
        Self::from_files(dir.to_path_buf(), files)
    }

    fn from_files(dir: PathBuf, files: Vec<PathBuf>) -> Result<Checkpoint, LoadError> {
        let mut ck = Checkpoint {
            dir,
            shards: Vec::new(),
            entries: BTreeMap::new(),
            used: Mutex::new(BTreeSet::new()),
        };
        for f in files {
            let (shard, tensors) = open_shard(&f)?;
            ck.add(shard, tensors)?;
        }
        Ok(ck)
    }

    fn add(&mut self, shard: Shard, tensors: Vec<HeaderEntry>) -> Result<(), LoadError> {
        let idx = self.shards.len();
        for (name, dtype, shape, start, end) in tensors {
            if let Some(prev) = self.entries.get(&name) {
                return Err(LoadError::Duplicate {
                    name,
                    first: self.entry_file(prev),
                    second: shard.path.clone(),
                });
            }
            self.entries.insert(
                name,
                Entry {
                    dtype,
                    shape,
                    source: Source::Shard {
                        shard: idx,
                        start,
                        end,
                    },
                },
            );
        }
        self.shards.push(shard);
        Ok(())
    }

    fn open_indexed(dir: &Path, index: &Path) -> Result<Checkpoint, LoadError> {
        let text = std::fs::read_to_string(index).map_err(io(index))?;
        let bad = |msg: String| LoadError::BadIndex {
            path: index.to_path_buf(),
            msg,
        };
        let v: Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let wm = v
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("no 'weight_map' object".to_string()))?;
        // shard file -> first tensor naming it (for messages), in sorted file order.
        let mut weight_map: Vec<(String, String)> = Vec::with_capacity(wm.len());
        let mut shard_files: BTreeMap<String, String> = BTreeMap::new();
        for (name, file) in wm {
            let file = file.as_str().ok_or_else(|| {
                bad(format!(
                    "weight_map['{name}'] must be a file name, found {file}"
                ))
            })?;
            shard_files
                .entry(file.to_string())
                .or_insert_with(|| name.clone());
            weight_map.push((name.clone(), file.to_string()));
        }
        let mut ck = Checkpoint {
            dir: dir.to_path_buf(),
            shards: Vec::new(),
            entries: BTreeMap::new(),
            used: Mutex::new(BTreeSet::new()),
        };
        let mut shard_of_file: BTreeMap<String, usize> = BTreeMap::new();
        for (file, first_tensor) in &shard_files {
            let path = dir.join(file);
            if let Err(source) = File::open(&path) {
                return Err(LoadError::MissingShard {
                    index: index.to_path_buf(),
                    tensor: first_tensor.clone(),
                    shard: path,
                    source,
                });
            }
            let (shard, tensors) = open_shard(&path)?;
            shard_of_file.insert(file.clone(), ck.shards.len());
            ck.add(shard, tensors)?;
        }
        for (name, file) in &weight_map {
            let want = shard_of_file[file];
            match ck.entries.get(name) {
                Some(e) if e.shard() == Some(want) => {}
                other => {
                    let found_in = match other {
                        Some(e) => format!(" (it is in {})", ck.entry_file(e).display()),
                        None => String::new(),
                    };
                    return Err(LoadError::NotInShard {
                        index: index.to_path_buf(),
                        tensor: name.clone(),
                        shard: dir.join(file),
                        found_in,
                    });
                }
            }
        }
        Ok(ck)
    }

    /// A checkpoint held in memory: `(name, dtype, shape, bytes)` per tensor, the bytes moved in
    /// (no copy; `Bytes::from_vec` wraps a `Vec` without copying it). Checked like a file's
    /// header: every byte length must be the shape's, and no name may appear twice. The tensors'
    /// `file` and the `dir` are [`IN_MEMORY`]; `files()` is empty. Everything else (the checked
    /// accessors, `unused`) works as for files, so `Weights::load` takes it unchanged.
    pub fn from_tensors<I>(tensors: I) -> Result<Checkpoint, LoadError>
    where
        I: IntoIterator<Item = (String, DType, Vec<usize>, Bytes)>,
    {
        let mem = PathBuf::from(IN_MEMORY);
        let mut ck = Checkpoint {
            dir: mem.clone(),
            shards: Vec::new(),
            entries: BTreeMap::new(),
            used: Mutex::new(BTreeSet::new()),
        };
        for (name, dtype, shape, bytes) in tensors {
            let nbytes = shape
                .iter()
                .try_fold(dtype.size_in_bytes(), |acc, &d| acc.checked_mul(d));
            if nbytes != Some(bytes.len()) {
                return Err(LoadError::BadHeader {
                    path: mem,
                    msg: format!(
                        "tensor '{name}': {} bytes given but {dtype} {shape:?} needs {}",
                        bytes.len(),
                        nbytes.map_or("more than usize::MAX".to_string(), |n| n.to_string())
                    ),
                });
            }
            if ck.entries.contains_key(&name) {
                return Err(LoadError::Duplicate {
                    name,
                    first: mem.clone(),
                    second: mem,
                });
            }
            ck.entries.insert(
                name,
                Entry {
                    dtype,
                    shape,
                    source: Source::Memory(bytes),
                },
            );
        }
        Ok(ck)
    }

    /// The file holding an entry ([`IN_MEMORY`] for an in-memory one).
    fn entry_file(&self, e: &Entry) -> PathBuf {
        match e.source {
            Source::Shard { shard, .. } => self.shards[shard].path.clone(),
            Source::Memory(_) => PathBuf::from(IN_MEMORY),
        }
    }

    /// Total bytes of every tensor's data.
    pub fn data_bytes(&self) -> usize {
        self.entries
            .values()
            .map(|e| e.shape.iter().product::<usize>() * e.dtype.size_in_bytes())
            .sum()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The shard files, in the order they were opened.
    pub fn files(&self) -> Vec<PathBuf> {
        self.shards.iter().map(|s| s.path.clone()).collect()
    }

    fn mark_used(&self, name: &str) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if !used.contains(name) {
            used.insert(name.to_string());
        }
    }

    /// Any tensor, as stored (records the name as used). `Missing` if absent.
    pub fn tensor(&self, name: &str) -> Result<TensorRef, LoadError> {
        self.mark_used(name);
        let e = self.entries.get(name).ok_or_else(|| LoadError::Missing {
            name: name.to_string(),
            dir: self.dir.clone(),
        })?;
        let bytes = match &e.source {
            Source::Shard { shard, start, end } => Bytes(Repr::Mapped {
                map: self.shards[*shard].map.clone(),
                start: *start,
                end: *end,
            }),
            Source::Memory(b) => b.clone(),
        };
        Ok(TensorRef {
            name: name.to_string(),
            dtype: e.dtype,
            shape: e.shape.clone(),
            file: self.entry_file(e),
            bytes,
        })
    }

    /// `name` with one of `dtypes` and exactly `shape`.
    fn checked(
        &self,
        name: &str,
        dtypes: &[DType],
        shape: &[usize],
        note: &str,
    ) -> Result<TensorRef, LoadError> {
        let t = self.tensor(name)?;
        if !dtypes.contains(&t.dtype) {
            let expected = dtypes
                .iter()
                .map(|d| d.name())
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(LoadError::WrongDtype {
                name: t.name,
                file: t.file,
                expected,
                found: t.dtype,
            });
        }
        if t.shape != shape {
            return Err(LoadError::WrongShape {
                name: t.name,
                file: t.file,
                expected: shape.to_vec(),
                found: t.shape,
                note: note.to_string(),
            });
        }
        Ok(t)
    }

    /// Float parameter: BF16, F16 or F32 with exactly `shape`, converted to f32.
    pub fn floats(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, LoadError> {
        let t = self.checked(name, &[DType::BF16, DType::F16, DType::F32], shape, "")?;
        Ok(match t.dtype {
            DType::BF16 => t
                .bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            DType::F16 => t
                .bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            _ => t
                .bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        })
    }

    /// A float matrix kept in its stored form (BF16 or F32 only; shape checked).
    pub fn float_matrix(&self, name: &str, shape: &[usize]) -> Result<TensorRef, LoadError> {
        self.checked(name, &[DType::BF16, DType::F32], shape, "")
    }

    /// I32 (or I64 converted with a range check) with exactly `shape`.
    pub fn ints(&self, name: &str, shape: &[usize]) -> Result<Vec<i32>, LoadError> {
        let t = self.checked(name, &[DType::I32, DType::I64], shape, "")?;
        if t.dtype == DType::I32 {
            return Ok(t
                .bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect());
        }
        t.bytes
            .chunks_exact(8)
            .enumerate()
            .map(|(i, b)| {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                let v = i64::from_le_bytes(a);
                i32::try_from(v).map_err(|_| LoadError::BadValue {
                    name: t.name.clone(),
                    file: t.file.clone(),
                    msg: format!("I64 value {v} at index {i} does not fit in i32"),
                })
            })
            .collect()
    }

    fn no_nan_scale(t: &TensorRef) -> Result<(), LoadError> {
        match t.bytes.iter().position(|&b| b == 0xFF) {
            Some(index) => Err(LoadError::NanScale {
                name: t.name.clone(),
                file: t.file.clone(),
                index,
            }),
            None => Ok(()),
        }
    }

    /// FP8 weight `{prefix}.weight` F8_E4M3 `[out, inp]` + `{prefix}.scale` F8_E8M0
    /// `[ceil(out/128), ceil(inp/128)]`; no scale byte 0xFF (NaN).
    pub fn fp8_weight(
        &self,
        prefix: &str,
        out: usize,
        inp: usize,
    ) -> Result<(TensorRef, TensorRef), LoadError> {
        let wname = format!("{prefix}.weight");
        let w = self.checked(&wname, &[DType::F8E4M3], &[out, inp], "")?;
        let note = format!(" (one F8_E8M0 scale per 128x128 block of '{wname}' [{out}, {inp}])");
        let s = self.checked(
            &format!("{prefix}.scale"),
            &[DType::F8E8M0],
            &[out.div_ceil(128), inp.div_ceil(128)],
            &note,
        )?;
        Self::no_nan_scale(&s)?;
        Ok((w, s))
    }

    /// FP4 weight `{prefix}.weight` I8 (U8 also accepted) `[out, inp/2]` + `{prefix}.scale`
    /// F8_E8M0 `[out, inp/32]`; `inp % 32 == 0`; no NaN scale.
    pub fn fp4_weight(
        &self,
        prefix: &str,
        out: usize,
        inp: usize,
    ) -> Result<(TensorRef, TensorRef), LoadError> {
        let wname = format!("{prefix}.weight");
        if !inp.is_multiple_of(32) {
            return Err(LoadError::BadRequest {
                name: wname,
                msg: format!(
                    "an FP4 weight needs an input size divisible by 32, asked for [{out}, {inp}]"
                ),
            });
        }
        let note = format!(" (FP4 [{out}, {inp}], two codes per byte)");
        let w = self.checked(&wname, &[DType::I8, DType::U8], &[out, inp / 2], &note)?;
        let note = format!(" (one F8_E8M0 scale per 32 inputs of '{wname}' FP4 [{out}, {inp}])");
        let s = self.checked(
            &format!("{prefix}.scale"),
            &[DType::F8E8M0],
            &[out, inp / 32],
            &note,
        )?;
        Self::no_nan_scale(&s)?;
        Ok((w, s))
    }

    /// Names never requested through the methods above, sorted: for the "unknown extra tensor"
    /// warning.
    pub fn unused(&self) -> Vec<String> {
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        self.entries
            .keys()
            .filter(|n| !used.contains(*n))
            .cloned()
            .collect()
    }
}

//! `dsv4 emu`: the PTX emulator from the command line. `run` launches one kernel of any PTX
//! file on tensors from a safetensors file and writes every buffer back; `coverage` lists the
//! instruction forms the embedded kernels use and whether the emulator implements each.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use dsv4_emu::{ArgValue, Device, LaunchConfig, LaunchStats};
use safetensors::{Dtype, SafeTensors};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Launch one kernel of a PTX file on the emulator.
    Run(RunArgs),
    /// The instruction forms the embedded PTX uses, and whether each is implemented.
    Coverage,
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long)]
    ptx: PathBuf,
    #[arg(long)]
    kernel: String,
    /// X[,Y[,Z]]
    #[arg(long)]
    grid: String,
    /// X[,Y[,Z]]
    #[arg(long)]
    block: String,
    /// Dynamic shared memory in bytes.
    #[arg(long, default_value_t = 0)]
    shared: u32,
    /// Tensors to place in device buffers.
    #[arg(long = "in")]
    input: Option<PathBuf>,
    /// Where every buffer is written after the launch (same names, dtypes and shapes).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The kernel's parameters in order: buf:NAME, u32:V, i32:V, u64:V, i64:V, f32:V, f64:V.
    #[arg(long = "arg")]
    args: Vec<String>,
    /// Print the launch's counters.
    #[arg(long)]
    profile: bool,
}

pub fn run(a: Args) -> Result<()> {
    match a.cmd {
        Cmd::Run(r) => run_kernel(r),
        Cmd::Coverage => coverage(),
    }
}

fn dims(s: &str, flag: &str) -> Result<[u32; 3]> {
    let parts: Vec<&str> = s.split(',').collect();
    if parts.is_empty() || parts.len() > 3 {
        bail!("--{flag} {s:?}: expected X[,Y[,Z]]");
    }
    let mut d = [1u32; 3];
    for (i, p) in parts.iter().enumerate() {
        d[i] = p.trim().parse().with_context(|| format!("--{flag} {s:?}: {p:?} is not a positive integer"))?;
        if d[i] == 0 {
            bail!("--{flag} {s:?}: dimensions must be at least 1");
        }
    }
    Ok(d)
}

struct Tensor {
    dtype: Dtype,
    shape: Vec<usize>,
    ptr: u64,
    len: usize,
}

fn run_kernel(r: RunArgs) -> Result<()> {
    let src = std::fs::read_to_string(&r.ptx).with_context(|| format!("reading {}", r.ptx.display()))?;
    let cfg = LaunchConfig { grid: dims(&r.grid, "grid")?, block: dims(&r.block, "block")?, dynamic_smem: r.shared };
    let mut dev = Device::new();
    let name = r.ptx.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let module = dev.load_module(&name, &src).map_err(|e| anyhow::anyhow!("{}: {e}", r.ptx.display()))?;

    let mut buffers: BTreeMap<String, Tensor> = BTreeMap::new();
    let data;
    if let Some(path) = &r.input {
        data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let st = SafeTensors::deserialize(&data).with_context(|| format!("{} is not a safetensors file", path.display()))?;
        for (tname, view) in st.tensors() {
            let bytes = view.data();
            let ptr = dev.alloc(bytes.len().max(1)).map_err(|e| anyhow::anyhow!("{e}"))?;
            dev.write(ptr, bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
            buffers.insert(tname, Tensor { dtype: view.dtype(), shape: view.shape().to_vec(), ptr, len: bytes.len() });
        }
    }
    let mut args = Vec::with_capacity(r.args.len());
    for spec in &r.args {
        let (kind, val) = spec.split_once(':').with_context(|| format!("--arg {spec:?}: expected KIND:VALUE (buf:NAME, u32:V, i32:V, u64:V, i64:V, f32:V, f64:V)"))?;
        let bad = || format!("--arg {spec:?}: {val:?} is not a valid {kind}");
        args.push(match kind {
            "buf" => {
                let t = buffers.get(val).with_context(|| match &r.input {
                    Some(p) => format!("--arg {spec:?}: {} has no tensor named {val:?}", p.display()),
                    None => format!("--arg {spec:?}: buffers need --in FILE.safetensors"),
                })?;
                ArgValue::U64(t.ptr)
            }
            "u32" => ArgValue::U32(val.parse().with_context(bad)?),
            "i32" => ArgValue::I32(val.parse().with_context(bad)?),
            "u64" => ArgValue::U64(val.parse().with_context(bad)?),
            "i64" => ArgValue::I64(val.parse().with_context(bad)?),
            "f32" => ArgValue::F32(val.parse().with_context(bad)?),
            "f64" => ArgValue::F64(val.parse().with_context(bad)?),
            _ => bail!("--arg {spec:?}: unknown kind {kind:?} (buf, u32, i32, u64, i64, f32, f64)"),
        });
    }
    let stats = dev.launch(module, &r.kernel, &cfg, &args).map_err(|e| anyhow::anyhow!("{e}"))?;
    if r.profile {
        print_profile(&r.kernel, &stats);
    }
    if let Some(out) = &r.out {
        let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for (tname, t) in &buffers {
            let mut bytes = vec![0u8; t.len];
            if t.len > 0 {
                dev.read(t.ptr, &mut bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            owned.push((tname.clone(), t.dtype, t.shape.clone(), bytes));
        }
        let views: Vec<(String, safetensors::tensor::TensorView)> = owned
            .iter()
            .map(|(n, d, s, b)| Ok((n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b)?)))
            .collect::<Result<_, safetensors::SafeTensorError>>()?;
        safetensors::serialize_to_file(views, None, out).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

fn print_profile(kernel: &str, s: &LaunchStats) {
    println!("kernel {kernel}");
    println!("  thread-instructions  {}", s.thread_insts);
    let total: u64 = s.warp_insts.values().sum();
    println!("  warp-instructions    {total}");
    for (class, n) in &s.warp_insts {
        println!("    {class:<18} {n}");
    }
    let eff = if s.global_sectors > 0 { s.global_bytes as f64 / (s.global_sectors * 32) as f64 * 100.0 } else { 100.0 };
    println!("  global bytes         {} requested, {} sectors of 32 B ({eff:.0}% efficiency)", s.global_bytes, s.global_sectors);
    println!("  shared bank conflicts {}", s.shared_bank_conflicts);
    println!("  tensor-core FLOPs    {}", s.tensor_flops);
}

fn coverage() -> Result<()> {
    let mut missing = 0;
    let mut all: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for m in dsv4_kernels::ptx::ALL {
        let forms = dsv4_emu::coverage::forms(m.src).map_err(|e| anyhow::anyhow!("{}: {e}", m.name))?;
        for f in forms {
            all.entry(f).or_default().push(m.name);
        }
        for (line, text) in dsv4_emu::coverage::unsupported(m.src) {
            println!("UNSUPPORTED {}.ptx:{line}: {text}", m.name);
            missing += 1;
        }
    }
    for (form, mods) in &all {
        println!("{form:<60} {}", mods.join(" "));
    }
    println!("{} instruction forms in {} embedded modules; {missing} unsupported", all.len(), dsv4_kernels::ptx::ALL.len());
    if missing > 0 {
        bail!("{missing} instruction forms of the embedded PTX are not implemented by the emulator");
    }
    Ok(())
}

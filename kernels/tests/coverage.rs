//! The coverage gate: every instruction form of the PTX the binary embeds is implemented by the
//! emulator, so no kernel lands that CI cannot run.

#[test]
fn every_embedded_instruction_form_is_emulated() {
    assert!(!dsv4_kernels::ptx::ALL.is_empty(), "no embedded PTX found");
    let mut missing = Vec::new();
    for m in dsv4_kernels::ptx::ALL {
        for (line, text) in dsv4_emu::coverage::unsupported(m.src) {
            missing.push(format!("{}.ptx:{line}: {text}", m.name));
        }
    }
    assert!(missing.is_empty(), "instruction forms the emulator does not implement:\n{}", missing.join("\n"));
}

#[test]
fn every_embedded_module_loads_on_the_emulator() {
    let mut dev = dsv4_emu::Device::new();
    for m in dsv4_kernels::ptx::ALL {
        let h = dev.load_module(m.name, m.src).unwrap_or_else(|e| panic!("{}.ptx: {e}", m.name));
        assert!(!dev.kernels(h).is_empty(), "{}.ptx has no kernel", m.name);
    }
}

#[test]
fn embedded_ptx_is_version_8_4_for_sm_90a() {
    for m in dsv4_kernels::ptx::ALL {
        let head: Vec<&str> = m.src.lines().map(str::trim).filter(|l| l.starts_with(".version") || l.starts_with(".target")).collect();
        assert!(head.contains(&".version 8.4"), "{}.ptx: expected .version 8.4, found {head:?}", m.name);
        assert!(head.contains(&".target sm_90a"), "{}.ptx: expected .target sm_90a, found {head:?}", m.name);
    }
}

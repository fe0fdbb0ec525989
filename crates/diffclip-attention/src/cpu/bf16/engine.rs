//! Which engine multiplies reduced-precision operands, chosen once per process.

use super::PairKernel;
#[cfg(target_arch = "x86_64")]
use super::{amx, dot_pairs};
use crate::MatmulPrecision;

/// What multiplies reduced-precision operands here: AMX or AVX512-BF16 (bf16), or the f32
/// GEMM on operands rounded to bf16 or f16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // AMX and AVX512-BF16 are x86-64's
pub(crate) enum Engine {
    Amx,
    /// AVX512-BF16's `vdpbf16ps` on AMX's packed operands (`dot_pairs.rs`).
    DotPairs,
    RoundedBf16,
    RoundedF16,
}

/// The environment variable that names the bf16 engine (as [`Engine::name`] spells it),
/// overriding the choice of [`Engine::best`]: for benchmarks and comparisons.
const ENGINE_VAR: &str = "DIFFCLIP_BF16_ENGINE";

impl Engine {
    /// The bf16 engine to use, chosen once: the fastest this CPU (and system) offers, or the
    /// one [`ENGINE_VAR`] names when the CPU offers it.
    pub(crate) fn best() -> Engine {
        static BEST: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            let asked = std::env::var(ENGINE_VAR).ok();
            let (engine, refused) = Engine::choose(asked.as_deref(), &Engine::offered());
            if let Some(message) = refused {
                eprintln!("warning: {message}");
            }
            engine
        })
    }

    /// The bf16 engines this CPU offers, the fastest first.
    pub(super) fn offered() -> Vec<Engine> {
        let mut offered = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if amx::available() {
                offered.push(Engine::Amx);
            }
            if dot_pairs::preferred() {
                offered.push(Engine::DotPairs);
            }
        }
        offered.push(Engine::RoundedBf16);
        #[cfg(target_arch = "x86_64")]
        if dot_pairs::available() && !dot_pairs::preferred() {
            offered.push(Engine::DotPairs);
        }
        offered
    }

    /// The engine `asked` names among `offered` (fastest first), else the fastest, with why
    /// the name was not taken.
    fn choose(asked: Option<&str>, offered: &[Engine]) -> (Engine, Option<String>) {
        let fastest = offered[0];
        let Some(asked) = asked.filter(|a| !a.is_empty()) else { return (fastest, None) };
        match offered.iter().find(|e| e.name() == asked) {
            Some(&engine) => (engine, None),
            None => {
                let names: Vec<&str> = offered.iter().map(|e| e.name()).collect();
                (fastest, Some(format!("{ENGINE_VAR}={asked} is not a bf16 engine this CPU offers ({}); using {}", names.join(", "), fastest.name())))
            }
        }
    }

    /// The engine for products in `precision`, `None` for f32 (the f32 GEMM).
    pub(crate) fn for_products(precision: MatmulPrecision) -> Option<Engine> {
        match precision {
            MatmulPrecision::F32 => None,
            MatmulPrecision::Bf16 => Some(Engine::best()),
            MatmulPrecision::F16 => Some(Engine::RoundedF16),
        }
    }

    /// How it rounds an operand.
    #[cfg(test)]
    pub(super) fn round(self) -> fn(f32) -> f32 {
        match self {
            Engine::Amx | Engine::DotPairs | Engine::RoundedBf16 => super::round_bf16,
            Engine::RoundedF16 => super::round_f16,
        }
    }

    /// Whether it packs operands into bf16 panels (AMX's layout), which [`super::mlp`] can
    /// write directly.
    pub(crate) fn packs_pairs(self) -> bool {
        self.pair_kernel().is_some()
    }

    /// The block kernel that multiplies its packed pairs, if it packs them.
    pub(super) fn pair_kernel(self) -> Option<PairKernel> {
        match self {
            #[cfg(target_arch = "x86_64")]
            Engine::Amx => Some(PairKernel::Amx),
            #[cfg(target_arch = "x86_64")]
            Engine::DotPairs => Some(PairKernel::DotPairs),
            _ => None,
        }
    }

    /// Its name, as benchmarks print it and [`ENGINE_VAR`] takes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Engine::Amx => "amx",
            Engine::DotPairs => "avx512-bf16",
            Engine::RoundedBf16 => "rounded-f32",
            Engine::RoundedF16 => "rounded-f32-f16",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_named_in_the_environment_is_taken_when_offered() {
        let offered = [Engine::Amx, Engine::RoundedBf16, Engine::DotPairs];
        assert_eq!(Engine::choose(None, &offered), (Engine::Amx, None));
        assert_eq!(Engine::choose(Some(""), &offered), (Engine::Amx, None), "empty is unset");
        assert_eq!(Engine::choose(Some("avx512-bf16"), &offered), (Engine::DotPairs, None));
        assert_eq!(Engine::choose(Some("rounded-f32"), &offered), (Engine::RoundedBf16, None));
        let (engine, refused) = Engine::choose(Some("avx512-bf16"), &offered[1..2]);
        assert_eq!(engine, Engine::RoundedBf16);
        assert_eq!(refused.as_deref(), Some("DIFFCLIP_BF16_ENGINE=avx512-bf16 is not a bf16 engine this CPU offers (rounded-f32); using rounded-f32"));
        // f16's engine is not a bf16 engine.
        assert!(Engine::choose(Some("rounded-f32-f16"), &offered).1.is_some());
        assert!(Engine::offered().contains(&Engine::best()));
    }
}

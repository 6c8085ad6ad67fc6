//! [`AnySolver`]: every solver that runs on the standard oracle set, chosen by
//! registry name at run time. The dsl and the runner build solvers only
//! through it.
//!
//! ```
//! use bilevel_core::registry::ParamValue;
//! use bilevel_core::solver::AnySolver;
//! use bilevel_core::{run, testing, Budget, Counted, DefaultRng};
//! use rand_core::SeedableRng;
//!
//! let mut s = AnySolver::<f64, [f64; 2], [f64; 2]>::build(
//!     "stocbio",
//!     &[("outer_lr", ParamValue::Real(0.05))],
//!     [0.0; 2],
//!     [0.0; 2],
//! )?;
//! let mut o = Counted::new(testing::q3::<f64>(0.0));
//! let mut rng = DefaultRng::seed_from_u64(1);
//! run(&mut s, &mut o, &mut rng, &Budget::iters(10), &mut ())?;
//! assert_eq!(s.info().name, "stocbio");
//! # Ok::<(), bilevel_core::Error>(())
//! ```
//!
//! The entries of [`registry::SOLVERS`] that are not
//! here are the finite-sum solvers, built by
//! [`AnyFiniteSum`](super::AnyFiniteSum) (a test checks that the two cover
//! the registry). ITD keeps its D
//! iterates in caller memory; through `AnySolver` that memory is a `Vec`
//! allocated once in `build`, so ITD is available only with feature `alloc`
//! (without it, `build("itd", …)` returns [`Error::InsufficientMemory`]);
//! likewise MAML and ANIL, whose N inner iterates live in a `Vec`.

#[cfg(feature = "alloc")]
extern crate alloc;

use rand_core::Rng;

use super::{
    AccBo, AccBoConfig, AdamBo, AdamBoConfig, AidCg, AidCgConfig, AidNeumann, AidNeumannConfig,
    Alset, AlsetConfig, Amigo, AmigoConfig, BoRep, BoRepConfig, Bsa, BsaConfig, Buffer, F2sa,
    F2saConfig, Fomaml, FomamlConfig, Fsla, FslaConfig, ItdConfig, MaSoba, MaSobaConfig, Slip,
    SlipConfig, Soba, SobaConfig, Solver, SolverState, StocBio, StocBioConfig, Ttsa, TtsaConfig,
    Ufom, UfomConfig,
};
use super::{
    Bome, BomeConfig, Mrbo, MrboConfig, SlipAdam, SlipAdamConfig, Sustain, SustainConfig, Vrbo,
    VrboConfig,
};
use crate::oracle::{CrossJvp, LowerGradX, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::{self, Configure, ParamValue, SolverInfo};
use crate::{Error, Real};

fn configured<C: Configure + Default>(overrides: &[(&str, ParamValue<'_>)]) -> Result<C, Error> {
    let mut c = C::default();
    for &(name, value) in overrides {
        c.set(name, value)?;
    }
    Ok(c)
}

macro_rules! any_solver {
    ($( $variant:ident($solver:ident, $config:ident, $module:ident) ),* $(,)?) => {
        /// One of the core's solvers, chosen by name at run time.
        #[derive(Debug, Clone)]
        #[allow(clippy::large_enum_variant)]
        pub enum AnySolver<T, BX, BY> {
            $(
                #[doc = concat!("[`", stringify!($solver), "`].")]
                $variant($solver<T, BX, BY>),
            )*
            /// [`Itd`](super::Itd) with its trajectory in a `Vec` (feature `alloc`).
            #[cfg(feature = "alloc")]
            Itd(super::Itd<T, BX, BY, alloc::vec::Vec<T>>),
            /// [`Maml`](super::Maml) with its trajectory in a `Vec` (feature `alloc`).
            #[cfg(feature = "alloc")]
            Maml(super::Maml<T, BX, BY, alloc::vec::Vec<T>>),
            /// [`Anil`](super::Anil) with its head trajectory in a `Vec` (feature `alloc`).
            #[cfg(feature = "alloc")]
            Anil(super::Anil<T, BX, BY, alloc::vec::Vec<T>>),
        }

        impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> AnySolver<T, BX, BY> {
            /// Builds the solver registered as `name` (case-insensitive, `_`
            /// and `-` interchangeable) from its default configuration with
            /// `overrides` applied in order, starting from x_0 and y_0.
            ///
            /// Errors: [`Error::UnknownSolver`], or the first override's
            /// [`Error::UnknownParam`] / [`Error::WrongType`] /
            /// [`Error::InvalidParam`].
            pub fn build(
                name: &str,
                overrides: &[(&str, ParamValue<'_>)],
                x0: BX,
                y0: BY,
            ) -> Result<Self, Error> {
                let info = registry::find(name).ok_or(Error::UnknownSolver)?;
                $(
                    if info.name == super::$module::INFO.name {
                        let cfg: $config = configured(overrides)?;
                        return $solver::new(cfg, x0, y0).map(AnySolver::$variant);
                    }
                )*
                if info.name == super::itd::INFO.name {
                    let cfg: ItdConfig = configured(overrides)?;
                    return Self::build_itd(cfg, x0, y0);
                }
                if info.name == super::maml::INFO.name || info.name == super::anil::INFO.name {
                    return Self::build_meta(info.name, overrides, x0, y0);
                }
                Err(Error::UnknownSolver)
            }

            /// MAML and ANIL keep N iterates of y: a `Vec` of N·dy entries.
            #[cfg(feature = "alloc")]
            fn build_meta(
                name: &str,
                overrides: &[(&str, ParamValue<'_>)],
                x0: BX,
                y0: BY,
            ) -> Result<Self, Error> {
                let dy = y0.as_ref().len();
                if name == super::maml::INFO.name {
                    let cfg: super::MamlConfig = configured(overrides)?;
                    let memory = alloc::vec![T::ZERO; (cfg.inner_steps as usize).saturating_mul(dy)];
                    super::Maml::new(cfg, x0, y0, memory).map(AnySolver::Maml)
                } else {
                    let cfg: super::AnilConfig = configured(overrides)?;
                    let memory = alloc::vec![T::ZERO; (cfg.inner_steps as usize).saturating_mul(dy)];
                    super::Anil::new(cfg, x0, y0, memory).map(AnySolver::Anil)
                }
            }

            #[cfg(not(feature = "alloc"))]
            fn build_meta(
                name: &str,
                overrides: &[(&str, ParamValue<'_>)],
                _x0: BX,
                y0: BY,
            ) -> Result<Self, Error> {
                let steps = if name == super::maml::INFO.name {
                    let cfg: super::MamlConfig = configured(overrides)?;
                    cfg.inner_steps
                } else {
                    let cfg: super::AnilConfig = configured(overrides)?;
                    cfg.inner_steps
                };
                Err(Error::InsufficientMemory {
                    needed: (steps as usize).saturating_mul(y0.as_ref().len()),
                    found: 0,
                })
            }

            #[cfg(feature = "alloc")]
            fn build_itd(cfg: ItdConfig, x0: BX, y0: BY) -> Result<Self, Error> {
                let n = super::Itd::<T, BX, BY, alloc::vec::Vec<T>>::memory_needed(
                    &cfg,
                    y0.as_ref().len(),
                );
                let memory = alloc::vec![T::ZERO; n];
                super::Itd::new(cfg, x0, y0, memory).map(AnySolver::Itd)
            }

            #[cfg(not(feature = "alloc"))]
            fn build_itd(cfg: ItdConfig, _x0: BX, y0: BY) -> Result<Self, Error> {
                cfg.validate()?;
                Err(Error::InsufficientMemory {
                    needed: (cfg.inner_steps as usize).saturating_mul(y0.as_ref().len()),
                    found: 0,
                })
            }

            /// The registry entry of the solver inside.
            pub fn info(&self) -> &'static SolverInfo {
                match self {
                    $( AnySolver::$variant(_) => &super::$module::INFO, )*
                    #[cfg(feature = "alloc")]
                    AnySolver::Itd(_) => &super::itd::INFO,
                    #[cfg(feature = "alloc")]
                    AnySolver::Maml(_) => &super::maml::INFO,
                    #[cfg(feature = "alloc")]
                    AnySolver::Anil(_) => &super::anil::INFO,
                }
            }
        }

        impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for AnySolver<T, BX, BY> {
            fn x(&self) -> &[T] {
                match self {
                    $( AnySolver::$variant(s) => s.x(), )*
                    #[cfg(feature = "alloc")]
                    AnySolver::Itd(s) => s.x(),
                    #[cfg(feature = "alloc")]
                    AnySolver::Maml(s) => s.x(),
                    #[cfg(feature = "alloc")]
                    AnySolver::Anil(s) => s.x(),
                }
            }
            fn y(&self) -> &[T] {
                match self {
                    $( AnySolver::$variant(s) => s.y(), )*
                    #[cfg(feature = "alloc")]
                    AnySolver::Itd(s) => s.y(),
                    #[cfg(feature = "alloc")]
                    AnySolver::Maml(s) => s.y(),
                    #[cfg(feature = "alloc")]
                    AnySolver::Anil(s) => s.y(),
                }
            }
            fn iter(&self) -> u64 {
                match self {
                    $( AnySolver::$variant(s) => s.iter(), )*
                    #[cfg(feature = "alloc")]
                    AnySolver::Itd(s) => s.iter(),
                    #[cfg(feature = "alloc")]
                    AnySolver::Maml(s) => s.iter(),
                    #[cfg(feature = "alloc")]
                    AnySolver::Anil(s) => s.iter(),
                }
            }
        }

        impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T>
            for AnySolver<T, BX, BY>
        {
            fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
                match self {
                    $( AnySolver::$variant(s) => s.visit_state(v), )*
                    #[cfg(feature = "alloc")]
                    AnySolver::Itd(s) => s.visit_state(v),
                    #[cfg(feature = "alloc")]
                    AnySolver::Maml(s) => s.visit_state(v),
                    #[cfg(feature = "alloc")]
                    AnySolver::Anil(s) => s.visit_state(v),
                }
            }
        }

        impl<T, BX, BY, O> Solver<T, O> for AnySolver<T, BX, BY>
        where
            T: Real,
            BX: Buffer<T>,
            BY: Buffer<T>,
            O: UpperGradX<T> + UpperGradY<T> + LowerGradY<T> + LowerGradX<T> + LowerHvp<T> + CrossJvp<T>,
        {
            fn name(&self) -> &'static str {
                self.info().name
            }

            fn init<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
                match self {
                    $( AnySolver::$variant(s) => s.init(oracle, rng), )*
                    #[cfg(feature = "alloc")]
                    AnySolver::Itd(s) => s.init(oracle, rng),
                    #[cfg(feature = "alloc")]
                    AnySolver::Maml(s) => s.init(oracle, rng),
                    #[cfg(feature = "alloc")]
                    AnySolver::Anil(s) => s.init(oracle, rng),
                }
            }

            fn step<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
                match self {
                    $( AnySolver::$variant(s) => s.step(oracle, rng), )*
                    #[cfg(feature = "alloc")]
                    AnySolver::Itd(s) => s.step(oracle, rng),
                    #[cfg(feature = "alloc")]
                    AnySolver::Maml(s) => s.step(oracle, rng),
                    #[cfg(feature = "alloc")]
                    AnySolver::Anil(s) => s.step(oracle, rng),
                }
            }
        }
    };
}

any_solver! {
    BoRep(BoRep, BoRepConfig, borep),
    Slip(Slip, SlipConfig, slip),
    Soba(Soba, SobaConfig, soba),
    MaSoba(MaSoba, MaSobaConfig, masoba),
    StocBio(StocBio, StocBioConfig, stocbio),
    Ttsa(Ttsa, TtsaConfig, ttsa),
    F2sa(F2sa, F2saConfig, f2sa),
    AidCg(AidCg, AidCgConfig, aidcg),
    AidNeumann(AidNeumann, AidNeumannConfig, aidneumann),
    Amigo(Amigo, AmigoConfig, amigo),
    Bsa(Bsa, BsaConfig, bsa),
    Alset(Alset, AlsetConfig, alset),
    Fsla(Fsla, FslaConfig, fsla),
    AccBo(AccBo, AccBoConfig, accbo),
    AdamBo(AdamBo, AdamBoConfig, adambo),
    SlipAdam(SlipAdam, SlipAdamConfig, slipadam),
    Mrbo(Mrbo, MrboConfig, mrbo),
    Sustain(Sustain, SustainConfig, sustain),
    Vrbo(Vrbo, VrboConfig, vrbo),
    Bome(Bome, BomeConfig, bome),
    Fomaml(Fomaml, FomamlConfig, fomaml),
    Ufom(Ufom, UfomConfig, ufom),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::SOLVERS;

    #[test]
    fn every_registry_entry_builds_with_defaults_or_is_a_finite_sum_solver() {
        for info in SOLVERS {
            let r = AnySolver::<f64, [f64; 2], [f64; 2]>::build(info.name, &[], [0.0; 2], [0.0; 2]);
            #[cfg(feature = "alloc")]
            let finite = super::super::anyfinite::FINITE_SUM.contains(&info.name);
            #[cfg(not(feature = "alloc"))]
            let finite = false;
            if finite {
                assert_eq!(r.err(), Some(Error::UnknownSolver), "{}", info.name);
            } else {
                let s = r.unwrap_or_else(|e| panic!("{}: {e}", info.name));
                assert_eq!(s.info().name, info.name);
            }
        }
    }

    #[test]
    fn bad_overrides_are_errors() {
        type A = AnySolver<f64, [f64; 1], [f64; 1]>;
        assert_eq!(
            A::build("nope", &[], [0.0], [0.0]).err(),
            Some(Error::UnknownSolver)
        );
        assert_eq!(
            A::build("soba", &[("nope", ParamValue::Real(1.0))], [0.0], [0.0]).err(),
            Some(Error::UnknownParam)
        );
        assert!(A::build(
            "soba",
            &[("step_size", ParamValue::Real(-1.0))],
            [0.0],
            [0.0]
        )
        .is_err());
        assert!(A::build(
            "SOBA",
            &[("step_size", ParamValue::Real(0.5))],
            [0.0],
            [0.0]
        )
        .is_ok());
    }
}

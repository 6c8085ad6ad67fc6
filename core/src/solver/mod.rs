//! The `Solver` trait and one module per algorithm.
//!
//! Every solver keeps its vectors in buffers of a type `B: Buffer<T>`, so the
//! same code runs on `[T; N]` (fixed size, stack or `static`, for
//! microcontrollers) and on `Vec<T>` (feature `alloc`, for 10^5+ parameters).
//! Buffers are cloned once when a solver is built; the step loop never
//! allocates.

use rand_core::Rng;

use crate::{Error, Oracle, Real};

pub mod accbo;
pub mod adambo;
pub mod aidcg;
pub mod aidneumann;
pub mod alset;
pub mod amigo;
pub mod anil;
pub mod any;
#[cfg(feature = "alloc")]
pub mod anyfinite;
pub mod bome;
pub mod borep;
pub mod bsa;
pub(crate) mod common;
pub mod f2sa;
pub mod fomaml;
pub mod fsla;
pub mod itd;
pub mod maml;
pub mod masoba;
mod metacommon;
pub mod mrbo;
pub mod saba;
pub mod slip;
pub mod slipadam;
pub mod soba;
pub mod srba;
pub mod stocbio;
mod storm;
pub mod sustain;
pub mod ttsa;
pub mod ufom;
pub mod vrbo;
mod zbased;

pub use accbo::{AccBo, AccBoConfig};
pub use adambo::{AdamBo, AdamBoConfig};
pub use aidcg::{AidCg, AidCgConfig};
pub use aidneumann::{AidNeumann, AidNeumannConfig};
pub use alset::{Alset, AlsetConfig};
pub use amigo::{Amigo, AmigoConfig};
pub use anil::{Anil, AnilConfig};
pub use any::AnySolver;
#[cfg(feature = "alloc")]
pub use anyfinite::{AnyFiniteSum, FINITE_SUM};
pub use bome::{Bome, BomeConfig};
pub use borep::{BoRep, BoRepConfig, LowerOutput, WarmStart};
pub use bsa::{Bsa, BsaConfig};
pub use f2sa::{F2sa, F2saConfig};
pub use fomaml::{Fomaml, FomamlConfig};
pub use fsla::{Fsla, FslaConfig};
pub use itd::{Itd, ItdConfig};
pub use maml::{Maml, MamlConfig};
pub use masoba::{MaSoba, MaSobaConfig};
pub use mrbo::{Mrbo, MrboConfig};
pub use saba::{FiniteSum, Saba, SabaConfig};
pub use slip::{Slip, SlipConfig, SlipWarmStart};
pub use slipadam::{SlipAdam, SlipAdamConfig};
pub use soba::{Soba, SobaConfig};
pub use srba::{Srba, SrbaConfig};
pub use stocbio::{StocBio, StocBioConfig};
pub use sustain::{Sustain, SustainConfig};
pub use ttsa::{Ttsa, TtsaConfig};
pub use ufom::{Ufom, UfomConfig};
pub use vrbo::{Vrbo, VrboConfig};
pub use zbased::{hypergradient, HypergradZ, ZInit};

/// Storage for one vector: `[T; N]`, `Vec<T>`, or anything sliceable and
/// cloneable.
pub trait Buffer<T>: AsRef<[T]> + AsMut<[T]> + Clone {}
impl<T, B: AsRef<[T]> + AsMut<[T]> + Clone> Buffer<T> for B {}

/// The iterate of a solver, readable without naming the oracle type.
pub trait SolverState<T> {
    /// The current upper variable.
    fn x(&self) -> &[T];

    /// The current lower variable.
    fn y(&self) -> &[T];

    /// Outer iterations taken so far.
    fn iter(&self) -> u64;
}

/// A stochastic bilevel solver: built from a validated config and starting
/// points, initialised once (warm starts happen here), then stepped.
pub trait Solver<T: Real, O: Oracle<T>>: SolverState<T> {
    /// The registry name.
    fn name(&self) -> &'static str;

    /// Checks dimensions against the oracle and runs the solver's warm start.
    fn init<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error>;

    /// One outer iteration. Errors only when called before [`Solver::init`].
    fn step<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error>;
}

/// Checks that a buffer has the oracle's dimension.
pub(crate) fn check_len(what: &'static str, found: usize, expected: usize) -> Result<(), Error> {
    if found == expected {
        Ok(())
    } else {
        Err(Error::DimensionMismatch {
            what,
            expected,
            found,
        })
    }
}

/// A zero-filled copy of `b`, made once at build time.
pub(crate) fn zeros_like<T: Real, B: Buffer<T>>(b: &B) -> B {
    let mut z = b.clone();
    crate::kernels::fill(z.as_mut(), T::ZERO);
    z
}

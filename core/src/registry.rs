//! The solver registry: every solver's name, hyperparameter schema and required
//! oracles, in one table that the dsl and the runner read instead of keeping
//! their own lists.

use core::fmt;

use crate::{Error, OracleKind};

/// The type of a hyperparameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ParamKind {
    /// A real number (`f64` in configs, converted to the scalar type at init).
    Real,
    /// A non-negative integer.
    Int,
    /// A boolean switch.
    Bool,
    /// One of a fixed set of names.
    Choice(&'static [&'static str]),
}

impl ParamKind {
    /// Name of the type, for messages.
    pub const fn name(self) -> &'static str {
        match self {
            ParamKind::Real => "real",
            ParamKind::Int => "integer",
            ParamKind::Bool => "bool",
            ParamKind::Choice(_) => "choice",
        }
    }
}

/// A hyperparameter value, as given in a spec or on a command line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamValue<'a> {
    /// A real number (integers are accepted for real parameters).
    Real(f64),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A name (for [`ParamKind::Choice`]).
    Str(&'a str),
}

impl ParamValue<'static> {
    /// An integer value from a count (saturating at `i64::MAX`).
    pub fn count(v: u64) -> Self {
        ParamValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for ParamValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ParamValue::Real(v) => {
                if v.is_infinite() {
                    f.write_str(if v > 0.0 { "inf" } else { "-inf" })
                } else {
                    write!(f, "{v}")
                }
            }
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::Bool(v) => write!(f, "{v}"),
            ParamValue::Str(v) => f.write_str(v),
        }
    }
}

/// One hyperparameter of a solver.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    /// Name used in specs, on command lines and in result files.
    pub name: &'static str,
    /// Its type.
    pub kind: ParamKind,
    /// Smallest allowed value (numeric kinds).
    pub min: f64,
    /// Largest allowed value (numeric kinds); may be `f64::INFINITY`.
    pub max: f64,
    /// `true` when `min` itself is excluded.
    pub min_exclusive: bool,
    /// `true` when `max` itself is excluded.
    pub max_exclusive: bool,
    /// The default (the papers' value).
    pub default: ParamValue<'static>,
    /// One line of documentation.
    pub doc: &'static str,
    /// Human-readable statement of the valid range, used in error messages.
    pub range: &'static str,
}

impl ParamSpec {
    /// A real parameter in `[min, max]` or with exclusive ends.
    pub const fn real(
        name: &'static str,
        default: f64,
        (min, min_exclusive): (f64, bool),
        (max, max_exclusive): (f64, bool),
        range: &'static str,
        doc: &'static str,
    ) -> Self {
        ParamSpec {
            name,
            kind: ParamKind::Real,
            min,
            max,
            min_exclusive,
            max_exclusive,
            default: ParamValue::Real(default),
            doc,
            range,
        }
    }

    /// An integer parameter in `[min, max]`.
    pub const fn int(
        name: &'static str,
        default: i64,
        min: i64,
        max: i64,
        range: &'static str,
        doc: &'static str,
    ) -> Self {
        ParamSpec {
            name,
            kind: ParamKind::Int,
            min: min as f64,
            max: max as f64,
            min_exclusive: false,
            max_exclusive: false,
            default: ParamValue::Int(default),
            doc,
            range,
        }
    }

    /// A boolean switch.
    pub const fn boolean(name: &'static str, default: bool, doc: &'static str) -> Self {
        ParamSpec {
            name,
            kind: ParamKind::Bool,
            min: 0.0,
            max: 1.0,
            min_exclusive: false,
            max_exclusive: false,
            default: ParamValue::Bool(default),
            doc,
            range: "true or false",
        }
    }

    /// A choice among names; `default` must be one of `choices`.
    pub const fn choice(
        name: &'static str,
        choices: &'static [&'static str],
        default: &'static str,
        range: &'static str,
        doc: &'static str,
    ) -> Self {
        ParamSpec {
            name,
            kind: ParamKind::Choice(choices),
            min: 0.0,
            max: 0.0,
            min_exclusive: false,
            max_exclusive: false,
            default: ParamValue::Str(default),
            doc,
            range,
        }
    }

    fn in_range(&self, v: f64) -> bool {
        let lo = if self.min_exclusive {
            v > self.min
        } else {
            v >= self.min
        };
        let hi = if self.max_exclusive {
            v < self.max
        } else {
            v <= self.max
        };
        // NaN fails both comparisons.
        lo && hi
    }

    /// Checks a real value against this parameter's range.
    pub fn check_real(&self, v: f64) -> Result<f64, Error> {
        if self.in_range(v) {
            Ok(v)
        } else {
            Err(self.invalid())
        }
    }

    /// Checks an integer value against this parameter's range.
    pub fn check_int(&self, v: i64) -> Result<u64, Error> {
        if v >= 0 && self.in_range(v as f64) {
            Ok(v as u64)
        } else {
            Err(self.invalid())
        }
    }

    /// The error for a value outside the range.
    pub const fn invalid(&self) -> Error {
        Error::InvalidParam {
            name: self.name,
            expected: self.range,
        }
    }

    /// The error for a value of the wrong type.
    pub const fn wrong_type(&self) -> Error {
        Error::WrongType {
            name: self.name,
            expected: self.kind.name(),
        }
    }

    /// Validates `value` and converts it to this parameter's canonical type.
    pub fn check(&self, value: ParamValue<'_>) -> Result<Checked, Error> {
        match (self.kind, value) {
            (ParamKind::Real, ParamValue::Real(v)) => self.check_real(v).map(Checked::Real),
            (ParamKind::Real, ParamValue::Int(v)) => self.check_real(v as f64).map(Checked::Real),
            (ParamKind::Int, ParamValue::Int(v)) => self.check_int(v).map(Checked::Int),
            (ParamKind::Bool, ParamValue::Bool(v)) => Ok(Checked::Bool(v)),
            (ParamKind::Choice(choices), ParamValue::Str(s)) => choices
                .iter()
                .position(|c| *c == s)
                .map(Checked::Choice)
                .ok_or(self.invalid()),
            _ => Err(self.wrong_type()),
        }
    }
}

/// A validated value: what a config's setter assigns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Checked {
    /// A real within range.
    Real(f64),
    /// A non-negative integer within range.
    Int(u64),
    /// A boolean.
    Bool(bool),
    /// The index of the chosen name in [`ParamKind::Choice`].
    Choice(usize),
}

/// What the registry knows about one solver.
#[derive(Debug, Clone, Copy)]
pub struct SolverInfo {
    /// Name used in specs and on command lines (lower case, `-` for spaces).
    pub name: &'static str,
    /// Display name, e.g. `"BO-REP"`.
    pub title: &'static str,
    /// One-line description.
    pub summary: &'static str,
    /// The paper it implements.
    pub reference: &'static str,
    /// Hyperparameters with types, ranges and defaults.
    pub params: &'static [ParamSpec],
    /// Oracles the solver calls.
    pub oracles: &'static [OracleKind],
}

impl SolverInfo {
    /// Looks up a hyperparameter by name.
    pub fn param(&self, name: &str) -> Option<&'static ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// A solver configuration that can be set by name, with validation.
pub trait Configure {
    /// The registry entry describing this configuration.
    const INFO: &'static SolverInfo;

    /// Sets one hyperparameter by name. Errors for unknown names, wrong types and
    /// out-of-range values; the configuration is unchanged on error.
    fn set(&mut self, name: &str, value: ParamValue<'_>) -> Result<(), Error>;

    /// Reads one hyperparameter by name.
    fn get(&self, name: &str) -> Option<ParamValue<'static>>;

    /// Checks every field (fields are public, so a config built by a struct
    /// literal is validated here, when the solver is built).
    fn validate(&self) -> Result<(), Error> {
        for p in Self::INFO.params {
            if let Some(v) = self.get(p.name) {
                p.check(v)?;
            }
        }
        Ok(())
    }
}

/// Every solver in the core, in display order.
pub const SOLVERS: &[&SolverInfo] = &[
    &crate::solver::borep::INFO,
    &crate::solver::slip::INFO,
    &crate::solver::soba::INFO,
    &crate::solver::masoba::INFO,
    &crate::solver::stocbio::INFO,
    &crate::solver::ttsa::INFO,
    &crate::solver::f2sa::INFO,
    &crate::solver::aidcg::INFO,
    &crate::solver::aidneumann::INFO,
    &crate::solver::itd::INFO,
    &crate::solver::amigo::INFO,
    &crate::solver::bsa::INFO,
    &crate::solver::alset::INFO,
    &crate::solver::fsla::INFO,
    &crate::solver::accbo::INFO,
    &crate::solver::adambo::INFO,
    &crate::solver::slipadam::INFO,
    &crate::solver::mrbo::INFO,
    &crate::solver::sustain::INFO,
    &crate::solver::vrbo::INFO,
    &crate::solver::bome::INFO,
    &crate::solver::saba::INFO,
    &crate::solver::srba::INFO,
    &crate::solver::maml::INFO,
    &crate::solver::anil::INFO,
    &crate::solver::fomaml::INFO,
    &crate::solver::ufom::INFO,
];

/// Finds a solver by name (case-insensitive; `_` and `-` are interchangeable).
pub fn find(name: &str) -> Option<&'static SolverInfo> {
    SOLVERS.iter().copied().find(|s| names_match(s.name, name))
}

fn names_match(a: &str, b: &str) -> bool {
    let norm = |c: u8| match c {
        b'_' => b'-',
        c => c.to_ascii_lowercase(),
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| norm(x) == norm(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_passes_its_own_check() {
        for s in SOLVERS {
            for p in s.params {
                assert!(p.check(p.default).is_ok(), "{}.{}", s.name, p.name);
            }
            assert!(!s.oracles.is_empty());
        }
    }

    #[test]
    fn lookup_is_forgiving_about_case_and_dashes() {
        assert_eq!(find("BO_REP").map(|s| s.name), Some("bo-rep"));
        assert_eq!(find("slip").map(|s| s.title), Some("SLIP"));
        assert!(find("sgd").is_none());
    }

    #[test]
    fn ranges_reject_nan_and_wrong_types() {
        let p = ParamSpec::real("lr", 0.1, (0.0, true), (f64::INFINITY, true), "> 0", "");
        assert!(p.check(ParamValue::Real(f64::NAN)).is_err());
        assert!(p.check(ParamValue::Real(0.0)).is_err());
        assert!(p.check(ParamValue::Real(f64::INFINITY)).is_err());
        assert_eq!(p.check(ParamValue::Int(2)), Ok(Checked::Real(2.0)));
        assert_eq!(
            p.check(ParamValue::Bool(true)),
            Err(Error::WrongType {
                name: "lr",
                expected: "real"
            })
        );
    }
}

//! Hyperparameters: validated, settable by name, errors instead of panics.

use bilevel_core::registry::{self, Configure, ParamKind, ParamValue};
use bilevel_core::solver::{BoRep, BoRepConfig, Slip, SlipConfig, Solver};
use bilevel_core::testing::q3;
use bilevel_core::{Counted, DefaultRng, Error};
use rand_core::SeedableRng;

#[test]
fn invalid_hyperparameters_are_errors() {
    let bad = [
        BoRepConfig {
            eta: 0.0,
            ..BoRepConfig::default()
        },
        BoRepConfig {
            eta: f64::NAN,
            ..BoRepConfig::default()
        },
        BoRepConfig {
            beta: 1.0,
            ..BoRepConfig::default()
        },
        BoRepConfig {
            beta: -0.1,
            ..BoRepConfig::default()
        },
        BoRepConfig {
            nu: -1.0,
            ..BoRepConfig::default()
        },
        BoRepConfig {
            gamma: f64::INFINITY,
            ..BoRepConfig::default()
        },
        BoRepConfig {
            period: 0,
            ..BoRepConfig::default()
        },
        BoRepConfig {
            inner_steps: 0,
            ..BoRepConfig::default()
        },
        BoRepConfig {
            radius: 0.0,
            ..BoRepConfig::default()
        },
        BoRepConfig {
            norm_eps: -1e-10,
            ..BoRepConfig::default()
        },
        BoRepConfig {
            warm_epochs: 41,
            ..BoRepConfig::default()
        },
    ];
    for cfg in bad {
        assert!(
            matches!(
                BoRep::new(cfg, [0.0_f64; 2], [0.0_f64; 2]),
                Err(Error::InvalidParam { .. })
            ),
            "{cfg:?}"
        );
    }
    let bad = [
        SlipConfig {
            eta: -0.1,
            ..SlipConfig::default()
        },
        SlipConfig {
            beta: 1.5,
            ..SlipConfig::default()
        },
        SlipConfig {
            gamma: 0.0,
            ..SlipConfig::default()
        },
        SlipConfig {
            z_radius: -1.0,
            ..SlipConfig::default()
        },
        SlipConfig {
            eta_decay_steps: 0.0,
            ..SlipConfig::default()
        },
    ];
    for cfg in bad {
        assert!(
            Slip::new(cfg, [0.0_f64; 2], [0.0_f64; 2]).is_err(),
            "{cfg:?}"
        );
    }
    // The error says which parameter and what range.
    let e = BoRep::new(
        BoRepConfig {
            beta: 1.0,
            ..BoRepConfig::default()
        },
        [0.0_f64; 1],
        [0.0_f64; 1],
    )
    .err()
    .unwrap();
    assert_eq!(
        e.to_string(),
        "invalid value for `beta`: expected in [0, 1)"
    );
}

#[test]
fn set_by_name_validates_and_round_trips() {
    let mut c = BoRepConfig::default();
    c.set("eta", ParamValue::Real(0.5)).unwrap();
    c.set("period", ParamValue::Int(7)).unwrap();
    c.set("warm_start", ParamValue::Str("plain")).unwrap();
    c.set("radius", ParamValue::Real(f64::INFINITY)).unwrap();
    c.set("accumulate_grads", ParamValue::Bool(true)).unwrap();
    assert_eq!(c.get("eta"), Some(ParamValue::Real(0.5)));
    assert_eq!(c.get("period"), Some(ParamValue::Int(7)));
    assert_eq!(c.get("warm_start"), Some(ParamValue::Str("plain")));
    assert_eq!(
        c.set("eta", ParamValue::Str("fast")),
        Err(Error::WrongType {
            name: "eta",
            expected: "real"
        })
    );
    assert_eq!(
        c.set("etta", ParamValue::Real(1.0)),
        Err(Error::UnknownParam)
    );
    assert!(c.set("period", ParamValue::Int(-3)).is_err());
    assert!(c.set("warm_start", ParamValue::Str("epoch")).is_err());
    // A failed set leaves the config unchanged.
    assert_eq!(c.get("eta"), Some(ParamValue::Real(0.5)));

    let mut s = SlipConfig::default();
    s.set("hypergrad_z", ParamValue::Str("updated")).unwrap();
    s.set("warm_steps", ParamValue::Int(0)).unwrap();
    assert_eq!(s.get("hypergrad_z"), Some(ParamValue::Str("updated")));
}

#[test]
fn every_registered_parameter_is_settable_and_readable() {
    fn each<C: Configure + Default>() {
        let mut c = C::default();
        for p in C::INFO.params {
            assert_eq!(
                c.get(p.name),
                Some(p.default),
                "{}.{} default",
                C::INFO.name,
                p.name
            );
            c.set(p.name, p.default).unwrap();
            let probe = match p.kind {
                ParamKind::Bool => ParamValue::Bool(true),
                ParamKind::Choice(ch) => ParamValue::Str(ch[ch.len() - 1]),
                ParamKind::Int => ParamValue::Int(p.min as i64 + 1),
                ParamKind::Real => ParamValue::Real(if p.max.is_finite() {
                    f64::midpoint(p.min, p.max)
                } else {
                    p.min + 0.5
                }),
            };
            c.set(p.name, probe).unwrap();
            assert_eq!(c.get(p.name), Some(probe), "{}.{}", C::INFO.name, p.name);
        }
        assert!(c.validate().is_ok());
        assert!(registry::find(C::INFO.name).is_some());
    }
    each::<BoRepConfig>();
    each::<SlipConfig>();
}

#[test]
fn dimension_mismatch_and_missing_init_are_errors() {
    let mut o = Counted::new(q3::<f64>(0.0));
    let mut rng = DefaultRng::seed_from_u64(0);
    let mut s = BoRep::new(BoRepConfig::default(), [0.0_f64; 3], [0.0_f64; 2]).unwrap();
    assert_eq!(
        s.init(&mut o, &mut rng),
        Err(Error::DimensionMismatch {
            what: "x",
            expected: 2,
            found: 3
        })
    );
    let mut s = Slip::new(SlipConfig::default(), [0.0_f64; 2], [0.0_f64; 2]).unwrap();
    assert_eq!(s.step(&mut o, &mut rng), Err(Error::NotInitialized));
}

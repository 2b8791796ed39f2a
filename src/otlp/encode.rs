//! The metric families (`crate::report::metrics`) as an OTLP `ExportMetricsServiceRequest`,
//! and the resource that names the process.
//!
//! One `ResourceMetrics` (the process), one `ScopeMetrics` (scope `heaptide`, the crate's
//! version), one `Metric` per family. A counter is a `Sum`, monotonic and cumulative, each
//! point's `start_time_unix_nano` the profiler's start; everything else is a `Gauge`, whose
//! points carry no start time. Integer values go as `as_int` (saturated at `i64::MAX`), floats
//! as `as_double`; a family's labels are its points' string attributes.

use super::proto::{
    AGGREGATION_TEMPORALITY_CUMULATIVE, ExportMetricsServiceRequest, Gauge, InstrumentationScope,
    KeyValue, Metric, MetricData, NumberDataPoint, NumberValue, Resource, ResourceMetrics,
    ScopeMetrics, Sum,
};
use super::settings::Settings;
use crate::report::metrics::{Family, Kind, Value};

/// The instrumentation scope's name, and `telemetry.sdk.name`.
pub(crate) const SCOPE: &str = "heaptide";

/// The resource attributes of this process: `service.name` (`OTEL_SERVICE_NAME`, else that of
/// `OTEL_RESOURCE_ATTRIBUTES`, else the executable's name), the other attributes of
/// `OTEL_RESOURCE_ATTRIBUTES`, then `process.pid`, `process.executable.name`, `host.name` and
/// `telemetry.sdk.{name,language,version}` (heaptide's own, unless `OTEL_RESOURCE_ATTRIBUTES`
/// sets the same key).
pub(crate) fn resource(settings: &Settings) -> Vec<KeyValue> {
    let exe = std::env::current_exe().ok().and_then(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.trim_end_matches(" (deleted)").to_string())
    });
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    resource_of(
        settings,
        exe.as_deref(),
        host.as_deref(),
        std::process::id(),
    )
}

/// [`resource`] from what was read.
fn resource_of(
    settings: &Settings,
    exe: Option<&str>,
    host: Option<&str>,
    pid: u32,
) -> Vec<KeyValue> {
    let given = |key: &str| settings.resource_attributes.iter().any(|(k, _)| k == key);
    let service = settings
        .service_name
        .as_deref()
        .or_else(|| {
            settings
                .resource_attributes
                .iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.as_str())
        })
        .or(exe)
        .unwrap_or("unknown_service");
    let mut out = vec![KeyValue::string("service.name", service)];
    for (k, v) in &settings.resource_attributes {
        if k != "service.name" {
            out.push(KeyValue::string(k, v));
        }
    }
    if !given("process.pid") {
        out.push(KeyValue::int("process.pid", i64::from(pid)));
    }
    if let Some(exe) = exe.filter(|_| !given("process.executable.name")) {
        out.push(KeyValue::string("process.executable.name", exe));
    }
    if let Some(host) = host.filter(|_| !given("host.name")) {
        out.push(KeyValue::string("host.name", host));
    }
    for (k, v) in [
        ("telemetry.sdk.name", SCOPE),
        ("telemetry.sdk.language", "rust"),
        ("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
    ] {
        if !given(k) {
            out.push(KeyValue::string(k, v));
        }
    }
    out
}

/// The request carrying `families`, measured at `time_unix_nano`, the counters counted from
/// `start_unix_nano`.
pub(crate) fn request(
    resource: &[KeyValue],
    families: &[Family<'_>],
    start_unix_nano: u64,
    time_unix_nano: u64,
) -> ExportMetricsServiceRequest {
    let metrics = families
        .iter()
        .filter(|f| !f.points.is_empty())
        .map(|f| metric(f, start_unix_nano, time_unix_nano))
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource.to_vec(),
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: SCOPE.to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                }),
                metrics,
            }],
        }],
    }
}

/// One family as a metric.
fn metric(f: &Family<'_>, start_unix_nano: u64, time_unix_nano: u64) -> Metric {
    let start = match f.kind {
        Kind::Counter => start_unix_nano,
        Kind::Gauge => 0,
    };
    let data_points = f
        .points
        .iter()
        .map(|p| NumberDataPoint {
            attributes: p
                .labels
                .iter()
                .map(|(k, v)| KeyValue::string(k, v))
                .collect(),
            start_time_unix_nano: start,
            time_unix_nano,
            value: Some(match p.value {
                Value::Int(v) => NumberValue::AsInt(i64::try_from(v).unwrap_or(i64::MAX)),
                Value::Float(v) => NumberValue::AsDouble(v),
            }),
        })
        .collect();
    Metric {
        name: f.otel_name.to_string(),
        description: f.help.to_string(),
        unit: f.unit.to_string(),
        data: Some(match f.kind {
            Kind::Gauge => MetricData::Gauge(Gauge { data_points }),
            Kind::Counter => MetricData::Sum(Sum {
                data_points,
                aggregation_temporality: AGGREGATION_TEMPORALITY_CUMULATIVE,
                is_monotonic: true,
            }),
        }),
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::super::proto::{AnyValue, AnyValueKind, ExportMetricsServiceResponse};
    use super::*;
    use crate::report::metrics::{Point, families};

    fn settings() -> Settings {
        Settings {
            endpoint: None,
            interval: std::time::Duration::from_secs(1),
            headers: Vec::new(),
            service_name: None,
            resource_attributes: Vec::new(),
        }
    }

    /// The string or integer value of `key` among `attributes`.
    fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValueKind> {
        attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    #[test]
    fn round_trip() {
        let report = crate::report::take();
        let list = families(&report, None, 0.5);
        let resource = resource(&settings());
        let request = request(&resource, &list, 1_000, 2_000);
        let bytes = request.encode_to_vec();
        let back = ExportMetricsServiceRequest::decode(&bytes[..]).unwrap();
        assert_eq!(back, request);

        let rm = &back.resource_metrics[0];
        let attrs = &rm.resource.as_ref().unwrap().attributes;
        assert_eq!(
            attr(attrs, "process.pid"),
            Some(&AnyValueKind::Int(i64::from(std::process::id())))
        );
        assert_eq!(
            attr(attrs, "telemetry.sdk.name"),
            Some(&AnyValueKind::String("heaptide".into()))
        );
        assert!(matches!(
            attr(attrs, "service.name"),
            Some(AnyValueKind::String(s)) if !s.is_empty()
        ));
        let sm = &rm.scope_metrics[0];
        assert_eq!(sm.scope.as_ref().unwrap().name, "heaptide");
        // Families without samples (the top sites of a report that has none) are left out.
        let sampled: Vec<&Family<'_>> = list.iter().filter(|f| !f.points.is_empty()).collect();
        assert_eq!(sm.metrics.len(), sampled.len());
        for (m, f) in sm.metrics.iter().zip(sampled) {
            assert_eq!(m.name, f.otel_name);
            assert_eq!(m.unit, f.unit);
            assert_eq!(m.description, f.help);
            let points = match (&m.data, f.kind) {
                (Some(MetricData::Gauge(g)), Kind::Gauge) => &g.data_points,
                (Some(MetricData::Sum(s)), Kind::Counter) => {
                    assert!(s.is_monotonic, "{}", m.name);
                    assert_eq!(s.aggregation_temporality, 2, "{}", m.name);
                    &s.data_points
                }
                (data, kind) => panic!("{}: {kind:?} written as {data:?}", m.name),
            };
            assert_eq!(points.len(), f.points.len(), "{}", m.name);
            for (dp, p) in points.iter().zip(&f.points) {
                let start = if f.kind == Kind::Counter { 1_000 } else { 0 };
                assert_eq!(dp.start_time_unix_nano, start, "{}", m.name);
                assert_eq!(dp.time_unix_nano, 2_000);
                assert_eq!(dp.attributes.len(), p.labels.len());
            }
        }
        let live = sm.metrics.iter().find(|m| m.name == "heaptide.heap.live");
        assert!(matches!(
            live.and_then(|m| m.data.as_ref()),
            Some(MetricData::Gauge(g)) if matches!(g.data_points[0].value, Some(NumberValue::AsInt(_)))
        ));
    }

    #[test]
    fn values_and_attributes() {
        let family = Family {
            name: "x_total",
            otel_name: "x",
            unit: "s",
            kind: Kind::Counter,
            help: "h",
            points: vec![
                Point {
                    labels: vec![("series", "heap".into())],
                    value: Value::Float(0.25),
                },
                Point {
                    labels: vec![],
                    value: Value::Int(u64::MAX),
                },
            ],
        };
        let m = metric(&family, 7, 9);
        let Some(MetricData::Sum(sum)) = m.data else {
            panic!("a counter is a sum")
        };
        assert_eq!(sum.data_points[0].value, Some(NumberValue::AsDouble(0.25)));
        assert_eq!(
            sum.data_points[0].attributes,
            vec![KeyValue::string("series", "heap")]
        );
        assert_eq!(sum.data_points[1].value, Some(NumberValue::AsInt(i64::MAX)));
        // A family without samples is left out.
        let empty = Family {
            points: vec![],
            ..family
        };
        assert!(
            request(&[], &[empty], 0, 0).resource_metrics[0].scope_metrics[0]
                .metrics
                .is_empty()
        );
    }

    #[test]
    fn resource_precedence() {
        let mut s = settings();
        s.resource_attributes = vec![
            ("service.name".into(), "from-attributes".into()),
            ("host.name".into(), "given-host".into()),
            ("deployment.environment".into(), "prod".into()),
        ];
        let r = resource_of(&s, Some("prog"), Some("real-host"), 42);
        let string = |k| match attr(&r, k) {
            Some(AnyValueKind::String(v)) => Some(v.as_str()),
            _ => None,
        };
        assert_eq!(string("service.name"), Some("from-attributes"));
        assert_eq!(string("host.name"), Some("given-host"));
        assert_eq!(string("deployment.environment"), Some("prod"));
        assert_eq!(string("process.executable.name"), Some("prog"));
        assert_eq!(attr(&r, "process.pid"), Some(&AnyValueKind::Int(42)));
        let keys: Vec<&str> = r.iter().map(|kv| kv.key.as_str()).collect();
        let mut unique = keys.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "{keys:?}");

        s.service_name = Some("from-env".into());
        let r = resource_of(&s, Some("prog"), None, 1);
        assert_eq!(
            attr(&r, "service.name"),
            Some(&AnyValueKind::String("from-env".into()))
        );
        let r = resource_of(&settings(), Some("prog"), None, 1);
        assert_eq!(
            attr(&r, "service.name"),
            Some(&AnyValueKind::String("prog".into()))
        );
    }

    #[test]
    fn response_decodes() {
        // What a Collector answers: empty (full success) or a partial success.
        assert_eq!(
            ExportMetricsServiceResponse::decode(&[][..]).unwrap(),
            ExportMetricsServiceResponse {
                partial_success: None
            }
        );
        let any = AnyValue {
            value: Some(AnyValueKind::Bool(true)),
        };
        let bytes = any.encode_to_vec();
        assert_eq!(AnyValue::decode(&bytes[..]).unwrap(), any);
        let any = AnyValue {
            value: Some(AnyValueKind::Double(0.5)),
        };
        assert_eq!(AnyValue::decode(&any.encode_to_vec()[..]).unwrap(), any);
    }
}

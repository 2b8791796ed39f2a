//! OTLP settings: where to push, how often, which headers, and what names the process.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HEAPTIDE_OTLP_ENDPOINT` | the full URL to `POST` to (`http://collector:4318/v1/metrics`), or `off` | `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/metrics`, else no export |
//! | `HEAPTIDE_OTLP_INTERVAL` | time between pushes | 10 s |
//! | `HEAPTIDE_OTLP_HEADERS` | extra request headers, `key=value,key2=value2` (values percent-decoded) | `OTEL_EXPORTER_OTLP_METRICS_HEADERS`, else `OTEL_EXPORTER_OTLP_HEADERS`, else none |
//! | `OTEL_SERVICE_NAME` | the resource's `service.name` | `service.name` of `OTEL_RESOURCE_ATTRIBUTES`, else the executable's name |
//! | `OTEL_RESOURCE_ATTRIBUTES` | more resource attributes, `key=value,...` (string values) | none |
//!
//! The `OTEL_` endpoints are used only when the protocol they are meant for
//! (`OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`) is unset or
//! `http/protobuf`, the one heaptide speaks. Only plain `http://` URLs are accepted: the
//! exporter carries no TLS (a Collector on the same host or in the same pod forwards over TLS).
//!
//! Read once, by [`super::install`] at start-up (after the allocator is initialised, so
//! allocating here is fine), with `getenv` as every heaptide setting. A value that does not
//! parse gives one stderr line naming the variable, the value (hidden for headers, which may
//! hold credentials) and the accepted forms, and its default is used.

use std::ffi::CStr;
use std::time::Duration;

use crate::config::{DURATION_FORMS, ParseError, complain, parse_duration};

/// The OTLP settings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// The URL to push to (`None`: no export).
    pub(crate) endpoint: Option<String>,
    /// Time between pushes.
    pub(crate) interval: Duration,
    /// Extra request headers (name, value).
    pub(crate) headers: Vec<(String, String)>,
    /// `OTEL_SERVICE_NAME`, if set.
    pub(crate) service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES` (key, value), in order.
    pub(crate) resource_attributes: Vec<(String, String)>,
}

/// The default of `HEAPTIDE_OTLP_INTERVAL`.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Accepted forms of an endpoint.
const ENDPOINT_FORMS: &str = "an http:// URL such as http://localhost:4318/v1/metrics (plain HTTP: \
     no TLS), or off";
/// Accepted forms of a header or attribute list.
const LIST_FORMS: &str = "a comma-separated list of key=value pairs such as \
     api-key=abc,tenant=a%20b (values percent-decoded)";
/// The only protocol heaptide speaks.
const PROTOCOL: &str = "http/protobuf";

/// A value that did not parse: the variable, the value as printed, the accepted forms, and
/// what is done instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Complaint {
    var: &'static str,
    value: String,
    forms: &'static str,
    instead: String,
}

/// Reads the settings with `var` (`crate::config::getenv` outside tests) and prints one stderr
/// line per value that does not parse.
pub(crate) fn from_env(var: impl Fn(&CStr) -> Option<&'static str>) -> Settings {
    let (settings, complaints) = read(var);
    for c in complaints {
        complain(c.var, &c.value, c.forms, &c.instead);
    }
    settings
}

/// The settings, and what did not parse.
fn read(var: impl Fn(&CStr) -> Option<&'static str>) -> (Settings, Vec<Complaint>) {
    let mut bad = Vec::new();
    let mut complaint = |var: &'static str, value: &str, forms: &'static str, instead: &str| {
        bad.push(Complaint {
            var,
            value: value.to_string(),
            forms,
            instead: instead.to_string(),
        });
    };
    let mut s = Settings {
        endpoint: None,
        interval: DEFAULT_INTERVAL,
        headers: Vec::new(),
        service_name: None,
        resource_attributes: Vec::new(),
    };
    s.endpoint = endpoint(&var, &mut complaint);
    if let Some(v) = var(c"HEAPTIDE_OTLP_INTERVAL") {
        match parse_duration(v) {
            Ok(d) => s.interval = d,
            Err(ParseError) => complaint("HEAPTIDE_OTLP_INTERVAL", v, DURATION_FORMS, "10s"),
        }
    }
    for name in [
        "HEAPTIDE_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        "OTEL_EXPORTER_OTLP_HEADERS",
    ] {
        if let Some(v) = get(&var, name) {
            match parse_list(v).and_then(check_headers) {
                Ok(headers) => s.headers = headers,
                // Not echoed back: headers often carry credentials.
                Err(ParseError) => complaint(name, "<hidden>", LIST_FORMS, "no extra headers"),
            }
            break;
        }
    }
    if let Some(v) = var(c"OTEL_RESOURCE_ATTRIBUTES") {
        match parse_list(v) {
            Ok(attributes) => s.resource_attributes = attributes,
            Err(ParseError) => complaint(
                "OTEL_RESOURCE_ATTRIBUTES",
                v,
                LIST_FORMS,
                "no attributes from it",
            ),
        }
    }
    s.service_name = var(c"OTEL_SERVICE_NAME")
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    (s, bad)
}

/// `var` of a name given as a `&str`.
fn get(var: &impl Fn(&CStr) -> Option<&'static str>, name: &str) -> Option<&'static str> {
    let name = std::ffi::CString::new(name).ok()?;
    var(&name)
}

/// The endpoint: `HEAPTIDE_OTLP_ENDPOINT`, else the OpenTelemetry variables.
fn endpoint(
    var: &impl Fn(&CStr) -> Option<&'static str>,
    complaint: &mut impl FnMut(&'static str, &str, &'static str, &str),
) -> Option<String> {
    if let Some(v) = var(c"HEAPTIDE_OTLP_ENDPOINT") {
        return match parse_endpoint(v) {
            Ok(url) => url.map(str::to_string),
            Err(ParseError) => {
                complaint("HEAPTIDE_OTLP_ENDPOINT", v, ENDPOINT_FORMS, "no export");
                None
            }
        };
    }
    let (name, url) = if let Some(v) = var(c"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", v.trim().to_string())
    } else if let Some(v) = var(c"OTEL_EXPORTER_OTLP_ENDPOINT") {
        let base = v.trim();
        let url = if base.is_empty() {
            String::new()
        } else if base.ends_with('/') {
            format!("{base}v1/metrics")
        } else {
            format!("{base}/v1/metrics")
        };
        ("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    } else {
        return None;
    };
    if url.is_empty() {
        return None;
    }
    let protocol = [
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .into_iter()
    .find_map(|p| get(var, p).map(|v| (p, v)));
    if let Some((protocol_var, p)) = protocol {
        if p.trim() != PROTOCOL {
            complaint(
                protocol_var,
                p,
                "http/protobuf (heaptide does not speak OTLP over gRPC or JSON)",
                &format!("no export to {name}; HEAPTIDE_OTLP_ENDPOINT sets one"),
            );
            return None;
        }
    }
    match parse_endpoint(&url) {
        Ok(url) => url.map(str::to_string),
        Err(ParseError) => {
            complaint(name, &url, ENDPOINT_FORMS, "no export");
            None
        }
    }
}

/// Parses an endpoint: `Ok(None)` for `off` or an empty value; else an `http://` URL with a
/// host.
pub(crate) fn parse_endpoint(value: &str) -> Result<Option<&str>, ParseError> {
    let v = value.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("off") || v.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let uri: ureq::http::Uri = v.parse().map_err(|_| ParseError)?;
    let http = uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("http"));
    if !http || uri.host().is_none_or(str::is_empty) {
        return Err(ParseError);
    }
    Ok(Some(v))
}

/// Parses `key=value,key2=value2` (the W3C baggage form the OpenTelemetry variables use): keys
/// and values trimmed, values percent-decoded, empty items skipped; an item without `=`, an
/// empty key or a bad escape refuses the whole list.
pub(crate) fn parse_list(value: &str) -> Result<Vec<(String, String)>, ParseError> {
    let mut out = Vec::new();
    for item in value.split(',') {
        if item.trim().is_empty() {
            continue;
        }
        let (k, v) = item.split_once('=').ok_or(ParseError)?;
        let k = k.trim();
        if k.is_empty() {
            return Err(ParseError);
        }
        out.push((k.to_string(), percent_decode(v.trim())?));
    }
    Ok(out)
}

/// Header names must be HTTP tokens and values visible ASCII, spaces and tabs.
fn check_headers(headers: Vec<(String, String)>) -> Result<Vec<(String, String)>, ParseError> {
    let token = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let value = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
    };
    if headers.iter().all(|(k, v)| token(k) && value(v)) {
        Ok(headers)
    } else {
        Err(ParseError)
    }
}

/// `%XX` escapes decoded; the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, ParseError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(ParseError)?;
            let hex = std::str::from_utf8(hex).map_err(|_| ParseError)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ParseError)?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ParseError)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment of `pairs`.
    fn env(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&CStr) -> Option<&'static str> {
        move |name: &CStr| {
            pairs
                .iter()
                .find(|(k, _)| k.as_bytes() == name.to_bytes())
                .map(|&(_, v)| v)
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint(" http://localhost:4318/v1/metrics "),
            Ok(Some("http://localhost:4318/v1/metrics"))
        );
        assert_eq!(
            parse_endpoint("HTTP://10.0.0.1/x"),
            Ok(Some("HTTP://10.0.0.1/x"))
        );
        assert_eq!(parse_endpoint("off"), Ok(None));
        assert_eq!(parse_endpoint(""), Ok(None));
        for bad in [
            "https://collector:4318/v1/metrics",
            "localhost:4318",
            "http://",
            "grpc://x:4317",
            "http://a b/",
        ] {
            assert_eq!(parse_endpoint(bad), Err(ParseError), "{bad:?}");
        }
    }

    #[test]
    fn lists() {
        assert_eq!(
            parse_list(" a = 1 ,, b=x%20y%3D ,c="),
            Ok(vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y=".into()),
                ("c".into(), String::new()),
            ])
        );
        assert_eq!(parse_list(""), Ok(vec![]));
        for bad in ["a", "=1", "a=%4", "a=%zz", "a=%ff"] {
            assert_eq!(parse_list(bad), Err(ParseError), "{bad:?}");
        }
        assert!(check_headers(vec![("x-key".into(), "v v".into())]).is_ok());
        assert!(check_headers(vec![("x key".into(), "v".into())]).is_err());
        assert!(check_headers(vec![("k".into(), "a\nb".into())]).is_err());
    }

    #[test]
    fn environment() {
        let (s, bad) = read(env(&[
            ("HEAPTIDE_OTLP_ENDPOINT", "http://127.0.0.1:4318/v1/metrics"),
            ("HEAPTIDE_OTLP_INTERVAL", "250ms"),
            ("HEAPTIDE_OTLP_HEADERS", "api-key=abc"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "ignored=1"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            ("OTEL_SERVICE_NAME", "svc"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod"),
        ]));
        assert_eq!(
            s,
            Settings {
                endpoint: Some("http://127.0.0.1:4318/v1/metrics".into()),
                interval: Duration::from_millis(250),
                headers: vec![("api-key".into(), "abc".into())],
                service_name: Some("svc".into()),
                resource_attributes: vec![("deployment.environment".into(), "prod".into())],
            }
        );
        assert_eq!(bad, vec![]);
        let (none, bad) = read(env(&[]));
        assert_eq!(bad, vec![]);
        assert_eq!(none.endpoint, None);
        assert_eq!(none.interval, DEFAULT_INTERVAL);
        assert!(none.headers.is_empty());
    }

    /// The settings of `pairs`, which must all parse.
    fn good(pairs: &'static [(&'static str, &'static str)]) -> Settings {
        let (s, bad) = read(env(pairs));
        assert_eq!(bad, vec![]);
        s
    }

    #[test]
    fn opentelemetry_fallbacks() {
        let base = good(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "k=v"),
        ]);
        assert_eq!(
            base.endpoint.as_deref(),
            Some("http://collector:4318/v1/metrics")
        );
        assert_eq!(base.headers, vec![("k".into(), "v".into())]);
        let slash = good(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]);
        assert_eq!(slash.endpoint.as_deref(), Some("http://c:4318/v1/metrics"));
        let metrics = good(&[
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "http://m:9000/custom",
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ]);
        assert_eq!(metrics.endpoint.as_deref(), Some("http://m:9000/custom"));
        let (grpc, bad) = read(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]));
        assert_eq!(grpc.endpoint, None);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].var, "OTEL_EXPORTER_OTLP_PROTOCOL");
        // HEAPTIDE_OTLP_ENDPOINT=off wins over the OpenTelemetry variables.
        let off = good(&[
            ("HEAPTIDE_OTLP_ENDPOINT", "off"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ]);
        assert_eq!(off.endpoint, None);
    }

    #[test]
    fn bad_values_keep_the_defaults() {
        let (s, bad) = read(env(&[
            (
                "HEAPTIDE_OTLP_ENDPOINT",
                "https://collector:4318/v1/metrics",
            ),
            ("HEAPTIDE_OTLP_INTERVAL", "soon"),
            ("HEAPTIDE_OTLP_HEADERS", "x=secret,no-equals-sign"),
        ]));
        let vars: Vec<&str> = bad.iter().map(|c| c.var).collect();
        assert_eq!(
            vars,
            [
                "HEAPTIDE_OTLP_ENDPOINT",
                "HEAPTIDE_OTLP_INTERVAL",
                "HEAPTIDE_OTLP_HEADERS"
            ]
        );
        assert_eq!(bad[2].value, "<hidden>");
        assert_eq!(s.endpoint, None);
        assert_eq!(s.interval, DEFAULT_INTERVAL);
        assert!(s.headers.is_empty());
    }
}

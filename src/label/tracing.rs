//! A `tracing` layer that labels allocations by span: while a span is entered on a thread,
//! that thread's samples carry the span's labels (see [`LabelLayer`]).

use std::cell::RefCell;
use std::fmt;

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Subscriber, span};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::table;
use crate::sample::thread;
use crate::sync::{AtomicU64, Ordering};

/// Labels allocations by the `tracing` spans they are made in.
///
/// By default a span labels with `span=<span name>`. [`LabelLayer::field`] names span fields
/// to label with instead: a span recording `component = "cache"` labels `component=cache`
/// (fields recorded later with `Span::record` count from the next time the span is entered).
/// Nested spans add up, the innermost value winning for a key several set. Entering a span
/// costs one thread-local read when the span was last entered on top of the same labels; else
/// one lookup in the label table under its lock.
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let subscriber = tracing_subscriber::registry().with(heaptide::LabelLayer::new());
/// tracing::subscriber::with_default(subscriber, || {
///     let _span = tracing::info_span!("load_config").entered();
///     let config = vec![0u8; 4096]; // labelled span=load_config
///     # drop(config);
/// });
/// ```
#[derive(Debug, Clone, Default)]
pub struct LabelLayer {
    /// Span fields to label with; empty: the span's name, under the key `span`.
    fields: Vec<&'static str>,
}

impl LabelLayer {
    /// A layer that labels with `span=<span name>`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Labels with the span field `name` (`name=<value>`) instead of the span's name; call
    /// again for more fields. Spans with none of the fields add no label.
    pub fn field(mut self, name: &'static str) -> Self {
        self.fields.push(name);
        self
    }
}

/// A span's labels, kept in its extensions.
struct SpanLabels {
    pairs: Vec<(&'static str, String)>,
    /// The label set last entered from and the one that gave, packed (`from << 32 | to`):
    /// entering on top of the same labels again needs no lookup.
    last: AtomicU64,
}

impl SpanLabels {
    /// The label set of `base` plus this span's pairs.
    fn set_on(&self, base: u32) -> u32 {
        let last = self.last.load(Ordering::Relaxed);
        if last != u64::MAX && (last >> 32) as u32 == base {
            return last as u32;
        }
        let to = self
            .pairs
            .iter()
            .fold(base, |set, (k, v)| table::with(set, k, v));
        self.last
            .store(u64::from(base) << 32 | u64::from(to), Ordering::Relaxed);
        to
    }
}

/// Collects the fields a layer labels with.
struct Fields<'a> {
    wanted: &'a [&'static str],
    pairs: Vec<(&'static str, String)>,
}

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: String) {
        if let Some(&name) = self.wanted.iter().find(|&&w| w == field.name()) {
            self.pairs.retain(|(k, _)| *k != name);
            self.pairs.push((name, value));
        }
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

thread_local! {
    /// The labels each entered span replaced on this thread, innermost last.
    static ENTERED: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

impl<S> Layer<S> for LabelLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let pairs = if self.fields.is_empty() {
            vec![("span", attrs.metadata().name().to_string())]
        } else {
            let mut fields = Fields {
                wanted: &self.fields,
                pairs: Vec::new(),
            };
            attrs.record(&mut fields);
            fields.pairs
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanLabels {
                pairs,
                last: AtomicU64::new(u64::MAX),
            });
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if self.fields.is_empty() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let Some(labels) = ext.get_mut::<SpanLabels>() else {
            return;
        };
        let mut fields = Fields {
            wanted: &self.fields,
            pairs: std::mem::take(&mut labels.pairs),
        };
        values.record(&mut fields);
        labels.pairs = fields.pairs;
        labels.last.store(u64::MAX, Ordering::Relaxed);
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let base = thread::label();
        let set = span
            .extensions()
            .get::<SpanLabels>()
            .map_or(base, |l| l.set_on(base));
        ENTERED.with(|e| e.borrow_mut().push(base));
        thread::set_label(set);
    }

    fn on_exit(&self, _id: &span::Id, _ctx: Context<'_, S>) {
        if let Some(previous) = ENTERED.with(|e| e.borrow_mut().pop()) {
            thread::set_label(previous);
        }
    }
}

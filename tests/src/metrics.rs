//! [`Metrics`]: a node's `/metrics` page (Prometheus / OpenMetrics text), parsed into samples
//! that tests can look up by name and labels.

use std::collections::BTreeMap;

/// One sample: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name as written (with `_total`, `_count`, `_bucket`, ... suffixes).
    pub name: String,
    /// The labels.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// The samples of one `/metrics` page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    samples: Vec<Sample>,
}

impl Metrics {
    /// Parses the text format; comment lines and lines that do not parse are skipped.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(parse_line)
            .collect();
        Self { samples }
    }

    /// Every sample.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The sum of the samples named `name` whose labels include every pair of `labels`;
    /// `None` when no sample matches.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut matched = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
            })
            .peekable();
        matched.peek()?;
        Some(matched.map(|s| s.value).sum())
    }

    /// [`Self::get`], or 0 when no sample matches (a counter that has not moved yet).
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.trim().parse::<f64>().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
        None => (series, BTreeMap::new()),
    };
    Some(Sample {
        name: name.trim().to_string(),
        labels,
        value,
    })
}

/// `a="x",b="y"` (values without escaped quotes, which bkv's labels never hold).
fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut rest = text.trim();
    // Each round consumes one pair; a page line is short, and the loop ends when it is empty.
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let (value, after) = after.split_once('"')?;
        out.insert(key.trim().to_string(), value.to_string());
        rest = after.trim_start_matches(',').trim();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_found_by_name_and_labels() {
        let page = "# HELP bkv_requests gRPC requests\n# TYPE bkv_requests counter\n\
                    bkv_requests_total{method=\"RecoverStart\",code=\"Ok\"} 3\n\
                    bkv_requests_total{method=\"RecoverStart\",code=\"InvalidArgument\"} 2\n\
                    bkv_requests_total{method=\"Status\",code=\"Ok\"} 1\n\
                    bkv_raft_term 7\n# EOF\n";
        let m = Metrics::parse(page);
        assert_eq!(m.samples().len(), 4);
        assert_eq!(
            m.get(
                "bkv_requests_total",
                &[("method", "RecoverStart"), ("code", "Ok")]
            ),
            Some(3.0)
        );
        assert_eq!(
            m.get("bkv_requests_total", &[("method", "RecoverStart")]),
            Some(5.0)
        );
        assert_eq!(m.get("bkv_raft_term", &[]), Some(7.0));
        assert_eq!(m.get("bkv_nothing", &[]), None);
        assert_eq!(m.count("bkv_requests_total", &[("method", "Delete")]), 0.0);
    }
}

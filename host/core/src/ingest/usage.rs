//! Token usage as the big SDKs report it, brought into the hub's one convention: `input_tokens`
//! includes cache reads, cache writes and audio input; `output_tokens` includes reasoning and audio
//! output (see [`TokenDetail`]).
//!
//! Read from the event itself (or the envelope's `payload.data`) and, for what that leaves unset,
//! from a nested `usage` (OpenAI, Anthropic) or `usageMetadata` / `usage_metadata` (Gemini) object:
//!
//! | names | convention |
//! |---|---|
//! | hub: `cache_read_tokens`, `cache_write_tokens`, `reasoning_tokens`, `audio_input_tokens`, `audio_output_tokens` | included |
//! | OpenAI Chat: `prompt_tokens_details.{cached_tokens,audio_tokens}`, `completion_tokens_details.{reasoning_tokens,audio_tokens}` | included |
//! | OpenAI Responses: `input_tokens_details.cached_tokens`, `output_tokens_details.reasoning_tokens` | included |
//! | Anthropic: `cache_read_input_tokens`, `cache_creation_input_tokens` | separate: added to the input |
//! | Gemini: `promptTokenCount`, `candidatesTokenCount`, `cachedContentTokenCount` (included), `thoughtsTokenCount` (separate: added to the output) | mixed |

use super::lazy::{Field, Obj};
use super::validate::{MAX_TOKENS, Validator};
use crate::event::{TokenDetail, TokenDetails};

const INPUT: &[&str] = &[
    "input_tokens",
    "prompt_tokens",
    "promptTokenCount",
    "prompt_token_count",
];
const OUTPUT: &[&str] = &[
    "output_tokens",
    "completion_tokens",
    "candidatesTokenCount",
    "candidates_token_count",
];
/// Objects holding usage, looked into for what the event itself does not say.
const NESTED: &[&str] = &["usage", "usageMetadata", "usage_metadata"];

/// Where a detail may be found: a key of the usage object, or a key of an object under it.
#[derive(Clone, Copy)]
enum At {
    Key(&'static str),
    In(&'static str, &'static str),
}

/// Each detail's names, in precedence order, and whether the provider counts it inside the total
/// (`true`) or beside it (`false`, so that it is added).
const NAMES: [(TokenDetail, &[(At, bool)]); 5] = [
    (
        TokenDetail::CacheRead,
        &[
            (At::Key("cache_read_tokens"), true),
            (At::In("prompt_tokens_details", "cached_tokens"), true),
            (At::In("input_tokens_details", "cached_tokens"), true),
            (At::Key("cachedContentTokenCount"), true),
            (At::Key("cached_content_token_count"), true),
            (At::Key("cache_read_input_tokens"), false),
        ],
    ),
    (
        TokenDetail::CacheWrite,
        &[
            (At::Key("cache_write_tokens"), true),
            (At::Key("cache_creation_input_tokens"), false),
        ],
    ),
    (
        TokenDetail::Reasoning,
        &[
            (At::Key("reasoning_tokens"), true),
            (
                At::In("completion_tokens_details", "reasoning_tokens"),
                true,
            ),
            (At::In("output_tokens_details", "reasoning_tokens"), true),
            (At::Key("thoughtsTokenCount"), false),
            (At::Key("thoughts_token_count"), false),
        ],
    ),
    (
        TokenDetail::AudioInput,
        &[
            (At::Key("audio_input_tokens"), true),
            (At::In("prompt_tokens_details", "audio_tokens"), true),
        ],
    ),
    (
        TokenDetail::AudioOutput,
        &[
            (At::Key("audio_output_tokens"), true),
            (At::In("completion_tokens_details", "audio_tokens"), true),
        ],
    ),
];

/// Every top-level name this module reads, for the validator's list of known fields.
pub(super) const FIELDS: &[&str] = &[
    "usage",
    "usageMetadata",
    "usage_metadata",
    "promptTokenCount",
    "prompt_token_count",
    "candidatesTokenCount",
    "candidates_token_count",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
    "prompt_tokens_details",
    "completion_tokens_details",
    "input_tokens_details",
    "output_tokens_details",
    "cachedContentTokenCount",
    "cached_content_token_count",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "thoughtsTokenCount",
    "thoughts_token_count",
];

/// A count and the JSON path it was read from.
type Read = Option<(i64, String)>;

/// What one object says about a call's usage, as read (before the conventions are applied).
#[derive(Default)]
struct Said {
    input: Read,
    output: Read,
    /// Each detail, and whether it is included in its total.
    details: [Option<(i64, String, bool)>; 5],
}

/// A call's usage in the hub's convention.
#[derive(Debug, Default)]
pub(super) struct Usage {
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub details: TokenDetails,
}

impl Validator<'_> {
    /// The usage `obj` reports, at `prefix` (`""` or `payload.data`), with every count checked.
    pub(super) fn usage(&mut self, obj: &Obj<'_>, prefix: &str) -> Usage {
        let mut said = self.said(obj, prefix);
        for key in NESTED {
            match obj.get(key) {
                None | Some(Field::Null) => {}
                Some(Field::Object(inner)) => {
                    let inner = self.said(&inner, &Self::path(prefix, key));
                    said.input = said.input.or(inner.input);
                    said.output = said.output.or(inner.output);
                    for (mine, theirs) in said.details.iter_mut().zip(inner.details) {
                        if mine.is_none() {
                            *mine = theirs;
                        }
                    }
                }
                Some(other) => {
                    let t = other.type_name();
                    self.fail(
                        Self::path(prefix, key),
                        format!("must be an object of token counts, got {t}"),
                    );
                }
            }
        }
        self.convention(said)
    }

    fn said(&mut self, obj: &Obj<'_>, prefix: &str) -> Said {
        let mut said = Said {
            input: self.counted(obj, prefix, INPUT),
            output: self.counted(obj, prefix, OUTPUT),
            ..Default::default()
        };
        for (detail, names) in NAMES {
            for &(at, included) in names {
                let found = match at {
                    At::Key(key) => self.counted(obj, prefix, &[key]),
                    At::In(parent, key) => match obj.get(parent) {
                        None | Some(Field::Null) => None,
                        Some(Field::Object(inner)) => {
                            self.counted(&inner, &Self::path(prefix, parent), &[key])
                        }
                        Some(other) => {
                            let t = other.type_name();
                            let field = Self::path(prefix, parent);
                            if !self.errors.iter().any(|e| e.field == field) {
                                self.fail(field, format!("must be an object, got {t}"));
                            }
                            None
                        }
                    },
                };
                if let Some((n, path)) = found {
                    said.details[detail.index()] = Some((n, path, included));
                    break;
                }
            }
        }
        said
    }

    /// A token count and its path.
    fn counted(&mut self, obj: &Obj<'_>, prefix: &str, keys: &[&str]) -> Read {
        let key = keys
            .iter()
            .find(|k| obj.get(k).is_some_and(|v| !v.is_null()))?;
        let n = self.tokens(obj, prefix, &[key])?;
        Some((n, Self::path(prefix, key)))
    }

    /// Applies the conventions: separate counts are added to their totals, included ones must fit
    /// in theirs.
    fn convention(&mut self, said: Said) -> Usage {
        let mut input = said.input.clone();
        let mut output = said.output.clone();
        let mut usage = Usage::default();
        for d in TokenDetail::ALL {
            let Some((n, path, included)) = &said.details[d.index()] else {
                continue;
            };
            usage.details.set(d, Some(*n));
            if *included {
                continue;
            }
            let total = if d.is_input() {
                &mut input
            } else {
                &mut output
            };
            *total = Some(match total.take() {
                Some((t, p)) => (t + n, p),
                None => (*n, path.clone()),
            });
        }
        for (t, path) in [&input, &output].into_iter().flatten() {
            if *t > MAX_TOKENS {
                self.fail(
                    path.clone(),
                    format!(
                        "{t} tokens with the separately counted cache or reasoning tokens is out of range: at most {MAX_TOKENS} tokens per event"
                    ),
                );
            }
        }
        // Included details must fit in their totals (cache reads and writes together in the input).
        let mut in_input = 0;
        for d in TokenDetail::ALL {
            let Some((n, path, true)) = &said.details[d.index()] else {
                continue;
            };
            let (total, total_name) = if d.is_input() {
                (&input, "input_tokens")
            } else {
                (&output, "output_tokens")
            };
            let within = match d {
                TokenDetail::CacheRead | TokenDetail::CacheWrite => {
                    in_input += n;
                    in_input
                }
                _ => *n,
            };
            match total {
                None => self.fail(
                    path.clone(),
                    format!(
                        "{n} {} need the {total_name} they are part of: send {total_name} too",
                        d.name().replace('_', " ")
                    ),
                ),
                Some((t, total_path)) if within > *t => self.fail(
                    path.clone(),
                    format!(
                        "{n} is more than fits in {total_path} ({t}), which includes it{}",
                        if d.is_input() {
                            " (with the other cache tokens); for counts kept apart from the input, as Anthropic reports them, send cache_read_input_tokens and cache_creation_input_tokens"
                        } else {
                            ""
                        }
                    ),
                ),
                Some(_) => {}
            }
        }
        usage.input_tokens = input.map(|(t, _)| t);
        usage.output_tokens = output.map(|(t, _)| t);
        usage
    }
}

#[cfg(test)]
mod tests {
    use crate::event::{EventRecord, TokenDetail::*};
    use crate::ingest::{FieldError, IngestLimits, parse_event};

    const T: &str = r#""timestamp": 1795604400000, "model": "m""#;

    fn event(fields: &str) -> Result<EventRecord, Vec<FieldError>> {
        parse_event(
            &format!("{{{T}, {fields}}}"),
            &IngestLimits::default(),
            1_795_604_400_000,
        )
    }

    fn usage(fields: &str) -> (Option<i64>, Option<i64>, [Option<i64>; 5]) {
        let e = event(fields).unwrap_or_else(|e| panic!("{fields}: {e:?}"));
        (e.input_tokens, e.output_tokens, e.details.0)
    }

    fn rejected(fields: &str) -> FieldError {
        let mut errors = event(fields).expect_err(fields);
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.remove(0)
    }

    #[test]
    fn each_sdk_shape_lands_in_the_hub_convention() {
        // The hub's own names: details included in the totals.
        let (i, o, d) = usage(
            r#""input_tokens": 1000, "output_tokens": 300, "cache_read_tokens": 800,
               "cache_write_tokens": 100, "reasoning_tokens": 200, "audio_input_tokens": 50,
               "audio_output_tokens": 10"#,
        );
        assert_eq!((i, o), (Some(1000), Some(300)));
        assert_eq!(d, [Some(800), Some(100), Some(200), Some(50), Some(10)]);

        // OpenAI Chat Completions, nested `usage` as the SDK returns it.
        let (i, o, d) = usage(
            r#""usage": {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
               "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 192, "audio_tokens": 0}}"#,
        );
        assert_eq!((i, o), (Some(2006), Some(300)));
        assert_eq!(d[CacheRead.index()], Some(1920));
        assert_eq!(d[Reasoning.index()], Some(192));

        // OpenAI Responses API.
        let (i, o, d) = usage(
            r#""usage": {"input_tokens": 500, "output_tokens": 90,
               "input_tokens_details": {"cached_tokens": 256},
               "output_tokens_details": {"reasoning_tokens": 64}}"#,
        );
        assert_eq!((i, o), (Some(500), Some(90)));
        assert_eq!(
            (d[CacheRead.index()], d[Reasoning.index()]),
            (Some(256), Some(64))
        );

        // Anthropic: cache counts are beside `input_tokens`, so they are added to it.
        let (i, o, d) = usage(
            r#""usage": {"input_tokens": 12, "output_tokens": 40,
               "cache_read_input_tokens": 9000, "cache_creation_input_tokens": 1500}"#,
        );
        assert_eq!((i, o), (Some(10_512), Some(40)));
        assert_eq!(
            (d[CacheRead.index()], d[CacheWrite.index()]),
            (Some(9000), Some(1500))
        );

        // Gemini: cached content is inside the prompt count, thoughts are beside the candidates.
        let (i, o, d) = usage(
            r#""usageMetadata": {"promptTokenCount": 4000, "candidatesTokenCount": 100,
               "cachedContentTokenCount": 3000, "thoughtsTokenCount": 250, "totalTokenCount": 4350}"#,
        );
        assert_eq!((i, o), (Some(4000), Some(350)));
        assert_eq!(
            (d[CacheRead.index()], d[Reasoning.index()]),
            (Some(3000), Some(250))
        );
        // ... and the Python SDK's snake case.
        let (i, o, _) = usage(
            r#""usage_metadata": {"prompt_token_count": 10, "candidates_token_count": 5, "thoughts_token_count": 5}"#,
        );
        assert_eq!((i, o), (Some(10), Some(10)));

        // The event's own fields win over the nested object, which fills what they leave out.
        let (i, o, d) = usage(
            r#""input_tokens": 7, "usage": {"prompt_tokens": 99, "completion_tokens": 3,
               "prompt_tokens_details": {"cached_tokens": 5}}"#,
        );
        assert_eq!((i, o, d[CacheRead.index()]), (Some(7), Some(3), Some(5)));
    }

    #[test]
    fn envelope_usage_is_read_from_the_data_but_not_from_cost_reports() {
        let line = |payload_type: &str, data: &str| {
            format!(
                r#"{{"timestamp": 1795604400000, "source_module": "m", "event_type": "t", "correlation_id": "c",
                    "payload": {{"payload_type": "{payload_type}", "data": {data}}}}}"#
            )
        };
        let limits = IngestLimits::default();
        let usage = parse_event(
            &line(
                "telemetry",
                r#"{"telemetry_type": "token_usage", "model_id": "gpt-4o", "prompt_tokens": 500,
                    "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 400}}"#,
            ),
            &limits,
            1_795_604_400_000,
        )
        .unwrap();
        assert_eq!(usage.details.get(CacheRead), Some(400));
        assert!(usage.shares_call_cost() && usage.is_unpriced());
        let cost = parse_event(
            &line(
                "cost",
                r#"{"cost_type": "token_cost", "model_id": "gpt-4o", "prompt_tokens": 500,
                    "cache_read_tokens": 400, "total_cost_usd": 0.001}"#,
            ),
            &limits,
            1_795_604_400_000,
        )
        .unwrap();
        assert_eq!(
            (cost.input_tokens, cost.details.get(CacheRead)),
            (None, None)
        );
        assert_eq!(
            (cost.cost_usd, cost.reported_cost_usd),
            (Some(0.001), Some(0.001))
        );
        assert!(cost.shares_call_cost() && !cost.is_priceable());
    }

    #[test]
    fn impossible_counts_are_rejected_naming_the_field() {
        let e = rejected(r#""input_tokens": 100, "cache_read_tokens": 101"#);
        assert_eq!(e.field, "cache_read_tokens");
        assert!(
            e.message.contains("more than fits in input_tokens (100)"),
            "{}",
            e.message
        );
        let e =
            rejected(r#""input_tokens": 100, "cache_read_tokens": 60, "cache_write_tokens": 50"#);
        assert_eq!(e.field, "cache_write_tokens");
        let e = rejected(
            r#""usage": {"completion_tokens": 10, "completion_tokens_details": {"reasoning_tokens": 11}}"#,
        );
        assert_eq!(e.field, "usage.completion_tokens_details.reasoning_tokens");
        assert!(
            e.message.contains("usage.completion_tokens (10)"),
            "{}",
            e.message
        );
        let e = rejected(r#""reasoning_tokens": 5"#);
        assert_eq!(e.field, "reasoning_tokens");
        assert!(
            e.message.contains("send output_tokens too"),
            "{}",
            e.message
        );
        let e = rejected(r#""input_tokens": 10, "cache_read_tokens": -1"#);
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("cache_read_tokens", "must not be negative, got -1")
        );
        let e = rejected(r#""input_tokens": 10, "cache_read_tokens": 2.5"#);
        assert!(e.message.contains("whole number"), "{}", e.message);
        let e = rejected(r#""usage": {"input_tokens": 1, "cache_read_input_tokens": 99999999.5}"#);
        assert_eq!(e.field, "usage.cache_read_input_tokens");
        let e = rejected(r#""usage": [1, 2]"#);
        assert_eq!(e.field, "usage");
        let e = rejected(r#""prompt_tokens": 5, "prompt_tokens_details": 3"#);
        assert_eq!(e.field, "prompt_tokens_details");
        let e = rejected(r#""input_tokens": 99999999, "cache_creation_input_tokens": 99999999"#);
        assert_eq!(e.field, "input_tokens");
        assert!(e.message.contains("out of range"), "{}", e.message);
        // Anthropic's separate counts never exceed anything: they are added.
        assert_eq!(
            usage(r#""input_tokens": 3, "cache_read_input_tokens": 900"#).0,
            Some(903)
        );
    }
}

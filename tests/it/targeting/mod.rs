//! Which requests an experiment takes: matchers, sticky keys, triggers, timelines and phases.

mod matchers;
mod phases;
mod sticky;
mod timeline;
mod triggers;

//! Limits on what a GraphQL document may ask for, checked before async-graphql parses,
//! validates or runs it.
//!
//! Every entry point (POST, GET, both WebSocket protocols) passes through async-graphql's
//! `prepare_request` hook, and that is where this extension sits:
//!
//! 1. the raw text: size, token count and bracket nesting, scanned without recursion, so the
//!    library's recursive parser never sees a document deep enough to exhaust the stack;
//! 2. the parsed document, measured once with every fragment expanded (memoised per fragment,
//!    so fragments that spread each other twice cost linear time to measure, not exponential):
//!    fields reached, root fields, depth, fragment chains, aliases, directives.
//!
//! Only then is the parsed document handed on, so nothing downstream parses it again. A
//! document that passed is kept by its text ([`Parsed`]): clients send the same few
//! operations over and over, and the same text parses to the same document, with the same
//! verdict.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest};
use async_graphql::parser::types::{
    Directive, DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Request, ServerError, ServerResult, Variables};

use crate::error::{ErrorCode, with_code};

/// Limits checked on every document before it is validated or run.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// Most aliased fields in one document.
    pub max_aliases: usize,
    /// Most root fields in one operation, counted through fragments.
    pub max_root_fields: usize,
    /// Largest document, in bytes.
    pub max_query_bytes: usize,
    /// Deepest selection allowed (introspection excepted: clients' standard introspection
    /// query is deeper than any real query needs to be).
    pub max_depth: usize,
    /// Most lexical tokens in one document.
    pub max_tokens: usize,
    /// Deepest nesting of `{`, `[` and `(` in the raw document.
    pub max_nesting: usize,
    /// Most fields one operation reaches with its fragments expanded.
    pub max_fields: usize,
    /// Most directives on one field, fragment spread or inline fragment.
    pub max_directives: usize,
}

/// Longest chain of fragments spreading fragments.
const MAX_FRAGMENT_CHAIN: usize = 32;

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_aliases: 100,
            max_root_fields: 50,
            max_query_bytes: 100_000,
            max_depth: 12,
            max_tokens: 10_000,
            max_nesting: 64,
            max_fields: 2_000,
            max_directives: 10,
        }
    }
}

/// The extension: the limits, and the documents that passed them.
#[derive(Clone)]
pub struct Checking {
    limits: QueryLimits,
    parsed: Arc<Parsed>,
}

impl Checking {
    /// Checks every document against `limits`.
    pub fn new(limits: QueryLimits) -> Self {
        Checking { limits, parsed: Arc::default() }
    }
}

impl ExtensionFactory for Checking {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

/// Most documents [`Parsed`] keeps (it starts over when full), and the longest text it keeps:
/// a few MB at most, whatever clients send.
const MAX_PARSED: usize = 256;
const MAX_PARSED_TEXT: usize = 4 * 1024;

/// Documents that passed the limits, by their text.
#[derive(Default)]
struct Parsed(Mutex<HashMap<String, Arc<ExecutableDocument>>>);

impl Parsed {
    fn get(&self, text: &str) -> Option<Arc<ExecutableDocument>> {
        self.0.lock().ok()?.get(text).cloned()
    }

    fn put(&self, text: &str, doc: &ExecutableDocument) {
        if text.len() > MAX_PARSED_TEXT {
            return;
        }
        let Ok(mut docs) = self.0.lock() else { return };
        if docs.len() >= MAX_PARSED {
            docs.clear();
        }
        docs.insert(text.to_owned(), Arc::new(doc.clone()));
    }
}

/// Put in a request's data by `GET /graphql`: such a request may not run a mutation.
#[derive(Debug, Clone)]
pub struct ReadOnlyRequest {
    /// The operation the request names, if any.
    pub operation_name: Option<String>,
}

fn refuse(code: ErrorCode, message: String) -> ServerError {
    with_code(ServerError::new(message, None), code)
}

/// What a scan of the raw text found.
#[derive(Debug, PartialEq, Eq)]
struct RawShape {
    tokens: usize,
    nesting: usize,
}

/// Counts tokens and the deepest bracket nesting of a GraphQL document, without recursion and
/// stopping as soon as either passes its limit. Strings, block strings and comments are
/// skipped as the GraphQL lexer skips them; commas and whitespace are not tokens.
fn scan(text: &str, max_tokens: usize, max_nesting: usize) -> RawShape {
    let bytes = text.as_bytes();
    let (mut i, mut tokens, mut nesting, mut deepest) = (0usize, 0usize, 0usize, 0usize);
    while i < bytes.len() && tokens <= max_tokens && deepest <= max_nesting {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                tokens += 1;
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                i += 3;
            }
            b'"' => {
                tokens += 1;
                i += 1;
                while i < bytes.len() && !matches!(bytes[i], b'"' | b'\n' | b'\r') {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'{' | b'[' | b'(' => {
                tokens += 1;
                nesting += 1;
                deepest = deepest.max(nesting);
                i += 1;
            }
            b'}' | b']' | b')' => {
                tokens += 1;
                nesting = nesting.saturating_sub(1);
                i += 1;
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                tokens += 1;
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+') => {
                tokens += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'.' | b'+' | b'-'))
                {
                    i += 1;
                }
            }
            _ => {
                // Punctuators (`!`, `$`, `:`, `=`, `@`, `|`, `&`) and anything the parser will
                // reject: one token each.
                tokens += 1;
                i += text[i..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    RawShape { tokens, nesting: deepest }
}

/// The size of one selection set with its fragments expanded.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    /// Fields reached (saturating).
    fields: u64,
    /// Fields at this level, looking through inline fragments and spreads.
    roots: u64,
    /// Depth below this level (introspection subtrees not counted).
    depth: usize,
    /// Longest chain of fragment spreads below this level.
    chain: usize,
}

/// Measures selection sets of one document, each fragment once.
struct Measure<'d> {
    doc: &'d ExecutableDocument,
    limits: QueryLimits,
    fragments: HashMap<&'d str, Option<Size>>,
    chain: usize,
}

impl<'d> Measure<'d> {
    fn directives(&self, list: &[Positioned<Directive>]) -> ServerResult<()> {
        if list.len() > self.limits.max_directives {
            let msg =
                format!("{} directives in one place; at most {} are allowed", list.len(), self.limits.max_directives);
            return Err(refuse(ErrorCode::QueryTooComplex, msg));
        }
        for (n, directive) in list.iter().enumerate() {
            let name = directive.node.name.node.as_str();
            if list[..n].iter().any(|d| d.node.name.node == directive.node.name.node) {
                let msg = format!("the directive \"@{name}\" can only be used once at this location");
                return Err(refuse(ErrorCode::GraphqlValidationFailed, msg));
            }
            // async-graphql strips @include/@skip before validating, so their arguments are
            // checked here.
            if matches!(name, "include" | "skip") {
                if let Some((arg, _)) = directive.node.arguments.iter().find(|(arg, _)| arg.node != "if") {
                    let msg = format!("unknown argument \"{}\" on directive \"@{name}\"", arg.node);
                    return Err(refuse(ErrorCode::GraphqlValidationFailed, msg));
                }
                if directive.node.arguments.len() != 1 {
                    let msg = format!("directive \"@{name}\" takes exactly one argument \"if\" of type \"Boolean!\"");
                    return Err(refuse(ErrorCode::GraphqlValidationFailed, msg));
                }
            }
        }
        Ok(())
    }

    fn set(&mut self, set: &'d SelectionSet) -> ServerResult<Size> {
        let mut size = Size::default();
        for item in &set.items {
            self.directives(item.node.directives())?;
            let inner = match &item.node {
                Selection::Field(field) => {
                    let below = self.set(&field.node.selection_set.node)?;
                    let introspection = field.node.name.node.starts_with("__");
                    let depth = if introspection { 0 } else { 1 + below.depth };
                    Size { fields: 1 + below.fields, roots: 1, depth, chain: below.chain }
                }
                Selection::InlineFragment(fragment) => self.set(&fragment.node.selection_set.node)?,
                Selection::FragmentSpread(spread) => self.fragment(&spread.node.fragment_name.node)?,
            };
            size.fields = size.fields.saturating_add(inner.fields);
            size.roots = size.roots.saturating_add(inner.roots);
            size.depth = size.depth.max(inner.depth);
            size.chain = size.chain.max(inner.chain);
            if size.fields > self.limits.max_fields as u64 {
                break;
            }
        }
        Ok(size)
    }

    fn fragment(&mut self, name: &'d Name) -> ServerResult<Size> {
        match self.fragments.get(name.as_str()) {
            Some(Some(size)) => return Ok(*size),
            Some(None) => {
                let msg = format!("the fragment \"{name}\" spreads itself");
                return Err(refuse(ErrorCode::GraphqlValidationFailed, msg));
            }
            None => {}
        }
        // An unknown fragment is reported by validation; it reaches nothing.
        let Some(fragment) = self.doc.fragments.get(name) else {
            return Ok(Size::default());
        };
        // `self.chain` bounds the recursion here; `size.chain` makes the answer the same
        // whichever fragment is measured first.
        self.chain += 1;
        let too_long = || {
            let msg = format!("fragments spread fragments more than {MAX_FRAGMENT_CHAIN} deep");
            refuse(ErrorCode::QueryTooDeep, msg)
        };
        if self.chain > MAX_FRAGMENT_CHAIN {
            return Err(too_long());
        }
        self.fragments.insert(name.as_str(), None);
        self.directives(&fragment.node.directives)?;
        let mut size = self.set(&fragment.node.selection_set.node)?;
        size.chain += 1;
        if size.chain > MAX_FRAGMENT_CHAIN {
            return Err(too_long());
        }
        self.chain -= 1;
        self.fragments.insert(name.as_str(), Some(size));
        Ok(size)
    }
}

/// Aliased fields in a selection set, each fragment body counted once, apart.
fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + count_aliases(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => count_aliases(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

impl QueryLimits {
    /// Checks the raw text, before anything parses it.
    fn check_text(&self, query: &str) -> ServerResult<()> {
        if query.len() > self.max_query_bytes {
            let msg = format!("the query is {} bytes; at most {} are allowed", query.len(), self.max_query_bytes);
            return Err(refuse(ErrorCode::QueryTooLarge, msg));
        }
        let shape = scan(query, self.max_tokens, self.max_nesting);
        if shape.nesting > self.max_nesting {
            let msg = format!("the query nests brackets more than {} deep", self.max_nesting);
            return Err(refuse(ErrorCode::QueryTooDeep, msg));
        }
        if shape.tokens > self.max_tokens {
            let msg = format!("the query has more than {} tokens", self.max_tokens);
            return Err(refuse(ErrorCode::QueryTooLarge, msg));
        }
        Ok(())
    }

    /// Checks a parsed document, every fragment expanded.
    fn check_document(&self, doc: &ExecutableDocument) -> ServerResult<()> {
        let aliases: usize =
            doc.operations.iter().map(|(_, op)| count_aliases(&op.node.selection_set.node)).sum::<usize>()
                + doc.fragments.values().map(|f| count_aliases(&f.node.selection_set.node)).sum::<usize>();
        if aliases > self.max_aliases {
            let msg = format!("the query has {aliases} aliases; at most {} are allowed", self.max_aliases);
            return Err(refuse(ErrorCode::QueryTooComplex, msg));
        }
        let mut measure = Measure { doc, limits: *self, fragments: HashMap::new(), chain: 0 };
        // Every fragment is measured, used or not, so a cycle or a bomb in an unused one is
        // refused here too (validation would otherwise walk it).
        for name in doc.fragments.keys() {
            measure.fragment(name)?;
        }
        for (_, op) in doc.operations.iter() {
            measure.directives(&op.node.directives)?;
            let size = measure.set(&op.node.selection_set.node)?;
            if size.fields > self.max_fields as u64 {
                let msg = format!(
                    "an operation reaches more than {} fields once its fragments are expanded",
                    self.max_fields
                );
                return Err(refuse(ErrorCode::QueryTooComplex, msg));
            }
            if size.depth > self.max_depth {
                let msg =
                    format!("the query is nested {} levels deep; at most {} are allowed", size.depth, self.max_depth);
                return Err(refuse(ErrorCode::QueryTooDeep, msg));
            }
            if size.roots > self.max_root_fields as u64 {
                let msg = format!(
                    "an operation has {} root fields; at most {} are allowed",
                    size.roots, self.max_root_fields
                );
                return Err(refuse(ErrorCode::QueryTooComplex, msg));
            }
        }
        Ok(())
    }
}

/// Whether the operation a request would run is a mutation.
/// The operation a request runs: the only one, or the one named.
pub(crate) fn selected_operation<'d>(
    doc: &'d ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'d async_graphql::parser::types::OperationDefinition> {
    match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next().map(|op| &op.node),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// Whether `query` (as it runs with `operation_name`) is a query whose root fields are all
/// [`crate::read_cache::CACHEABLE`], selected plainly (no fragment, no directive at the root).
/// Only ever asked of a document that already ran without error, so within every limit.
pub fn cacheable_read(query: &str, operation_name: Option<&str>) -> bool {
    let Ok(doc) = async_graphql::parser::parse_query(query) else { return false };
    let Some(op) = selected_operation(&doc, operation_name) else { return false };
    let items = &op.selection_set.node.items;
    op.ty == OperationType::Query
        && doc.fragments.is_empty()
        && !items.is_empty()
        && items.iter().all(|item| match &item.node {
            Selection::Field(field) => {
                let name = field.node.name.node.as_str();
                field.node.directives.is_empty()
                    && (crate::read_cache::CACHEABLE.contains(&name) || name == "__typename")
            }
            _ => false,
        })
}

fn runs_mutation(doc: &ExecutableDocument, operation_name: Option<&str>) -> bool {
    selected_operation(doc, operation_name).is_some_and(|op| op.ty == OperationType::Mutation)
}

/// The names of the root fields `set` selects, through inline fragments and spreads.
fn root_fields<'d>(
    doc: &'d ExecutableDocument,
    set: &'d SelectionSet,
    seen: &mut Vec<&'d str>,
    out: &mut Vec<&'d str>,
) {
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => out.push(field.node.name.node.as_str()),
            Selection::InlineFragment(inline) => root_fields(doc, &inline.node.selection_set.node, seen, out),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                if !seen.contains(&name)
                    && let Some(fragment) = doc.fragments.get(&spread.node.fragment_name.node)
                {
                    seen.push(name);
                    root_fields(doc, &fragment.node.selection_set.node, seen, out);
                }
            }
        }
    }
}

/// Refuses an operation with a root field the caller's role may not select
/// (`crate::auth::permissions`), before it is validated or run.
fn check_rights(ctx: &ExtensionContext<'_>, doc: &ExecutableDocument) -> ServerResult<()> {
    let Some(who) = ctx.data_opt::<crate::auth::Viewer>() else { return Ok(()) };
    let operation_name = ctx.data_opt::<OperationName>().and_then(|n| n.0.as_deref());
    let Some(op) = selected_operation(doc, operation_name) else { return Ok(()) };
    let (mut seen, mut fields) = (Vec::new(), Vec::new());
    root_fields(doc, &op.selection_set.node, &mut seen, &mut fields);
    for field in fields {
        let required = crate::auth::permissions::required(op.ty, field);
        if let Err(err) = who.require(required) {
            // Refused before anything runs, so no audit entry: the log keeps the attempt.
            tracing::warn!(actor = %who.subject, role = who.role.as_str(), field, "refused: the role lacks the right");
            return Err(refuse(ErrorCode::Forbidden, format!("{field}: {}", err.public_message())));
        }
    }
    Ok(())
}

/// The `operationName` of the request, kept for the rights check (and the metrics).
pub(crate) struct OperationName(pub(crate) Option<String>);

#[async_trait::async_trait]
impl Extension for Checking {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        // Nothing upstream parses documents, so every request arrives here as text.
        let doc = match self.parsed.get(&request.query) {
            Some(doc) => ExecutableDocument::clone(&doc),
            None => {
                self.limits.check_text(&request.query)?;
                let doc = async_graphql::parser::parse_query(&request.query)
                    .map_err(|err| with_code(err.into(), ErrorCode::GraphqlParseFailed))?;
                self.limits.check_document(&doc)?;
                self.parsed.put(&request.query, &doc);
                doc
            }
        };
        request.set_parsed_query(doc);
        let name = OperationName(request.operation_name.clone());
        request = request.data(name);
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        if let Some(get) = ctx.data_opt::<ReadOnlyRequest>()
            && runs_mutation(&doc, get.operation_name.as_deref())
        {
            return Err(refuse(ErrorCode::MethodNotAllowed, "mutations must use POST".to_owned()));
        }
        check_rights(ctx, &doc)?;
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_board_reads_are_cacheable() {
        assert!(cacheable_read("{ tasks(first: 5) { edges { node { id } } } }", None));
        assert!(cacheable_read("query Q { task(id: \"x\") { id } }", Some("Q")));
        for no in [
            "mutation { createTask(input: {title: \"x\"}) { id } }",
            "{ tasks { totalCount } me { name } }",
            "{ feedStats { recent24h } }",
            "{ ...F } fragment F on Query { tasks { totalCount } }",
            "{ tasks @skip(if: false) { totalCount } }",
            "subscription { taskUpdated { kind } }",
            "not graphql",
        ] {
            assert!(!cacheable_read(no, None), "{no}");
        }
    }

    #[test]
    fn scan_counts_tokens_and_nesting_outside_strings_and_comments() {
        let shape = scan("{ a(x: \"{[(\", y: \"\"\"{{{\\\"\"\"\"\"\") # {{{{\n { b } }", 100, 100);
        assert_eq!(shape, RawShape { tokens: 14, nesting: 2 });
        assert_eq!(scan("query Q($v: [Int!]) { ...F }", 100, 100).nesting, 2);
    }

    #[test]
    fn scan_stops_early_on_deep_input() {
        let deep = "[".repeat(1_000_000);
        let shape = scan(&deep, 10_000, 64);
        assert_eq!(shape.nesting, 65);
    }

    #[test]
    fn doubling_fragments_are_measured_in_linear_time() {
        let mut text = String::from("{ ...F0 }\n");
        for i in 0..60 {
            text.push_str(&format!("fragment F{i} on Query {{ ...F{} ...F{} }}\n", i + 1, i + 1));
        }
        text.push_str("fragment F60 on Query { __typename }\n");
        let doc = async_graphql::parser::parse_query(&text).unwrap();
        let err = QueryLimits::default().check_document(&doc).unwrap_err();
        assert!(err.message.contains("fragments spread fragments"), "{}", err.message);

        // A plain chain reaches one field, and is still refused for its length.
        let mut text = String::from("{ ...F0 }\n");
        for i in 0..40 {
            text.push_str(&format!("fragment F{i} on Query {{ ...F{} }}\n", i + 1));
        }
        text.push_str("fragment F40 on Query { __typename }\n");
        for _ in 0..5 {
            let doc = async_graphql::parser::parse_query(&text).unwrap();
            let err = QueryLimits::default().check_document(&doc).unwrap_err();
            assert!(err.message.contains("fragments spread fragments"), "{}", err.message);
        }

        let mut text = String::from("{ ...F0 }\n");
        for i in 0..25 {
            text.push_str(&format!("fragment F{i} on Query {{ ...F{} ...F{} }}\n", i + 1, i + 1));
        }
        text.push_str("fragment F25 on Query { __typename }\n");
        let doc = async_graphql::parser::parse_query(&text).unwrap();
        let err = QueryLimits::default().check_document(&doc).unwrap_err();
        assert!(err.message.contains("fields once its fragments are expanded"), "{}", err.message);
    }

    #[test]
    fn a_fragment_cycle_is_refused_without_looping() {
        let doc =
            async_graphql::parser::parse_query("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }")
                .unwrap();
        let err = QueryLimits::default().check_document(&doc).unwrap_err();
        assert!(err.message.contains("spreads itself"), "{}", err.message);
    }
}

//! Functions whose result can be far larger than their arguments, bounded.
//!
//! DataFusion's memory pool counts what operators hold (hash tables, sort
//! buffers), not the arrays a scalar function returns, and constant arguments
//! are evaluated while *planning*, before any pool exists:
//! `repeat('x', 2147483647)` built a 2 GiB string (8.4 GB resident) from a
//! 40-byte statement, and a few such statements at once end the process.
//!
//! Each function below is replaced by [`Bounded`], the same function behind a
//! check: before it runs, the size of what it would build for the batch at
//! hand is computed from its arguments (an upper bound, per row, summed), and a
//! call over [`MAX_FUNCTION_RESULT_BYTES`] is refused with an error naming the
//! function and the sizes. The list is of the functions whose result is not
//! bounded by the size of their arguments:
//!
//! | function | result at most |
//! |---|---|
//! | `repeat(s, n)` | `len(s) · n` |
//! | `lpad`, `rpad(s, n [, fill])` | `4 · n` (characters of up to 4 bytes) |
//! | `replace(s, from, to)` | `len(s) + (len(s) / len(from)) · len(to)` (`from` empty: every position) |
//! | `regexp_replace(s, pattern, with [, flags])` | `len(s) + (len(s) + 1) · (len(with) + r · len(s))`, `r` the group references in `with` |
//! | `concat`, `concat_ws` | the sum of the arguments (and separators) |
//! | `array_repeat(x, n)` | `(len(x) + 8) · n` |
//! | `array_resize(a, n [, x])` | `16 · n` |
//! | `range`, `generate_series` | `8 · (|stop − start| / |step| + 1)` (dates and timestamps in nanoseconds, a month of the step counted as 28 days) |
//! | `array_replace`, `array_replace_n`, `array_replace_all` | `elements(a) · (len(to) + 8)` |
//! | `to_char` (`date_format`) | `16 · len(format) + 32` per row (`%+` writes 32 bytes for 2) |
//!
//! One function's *work*, not its result, grows faster than its arguments:
//! `levenshtein(a, b)` compares every character of `a` with every one of `b`.
//! A call is one uninterruptible step of its query — a timeout or a cancel
//! acts between batches — and a red team's `levenshtein` of two 20,000
//! character strings over `generate_series(1, 300)` held a thread for hours
//! after its query had timed out, while other users' queries waited for it.
//! Its calls are checked the same way against [`MAX_FUNCTION_WORK`]: the sum,
//! over the batch's rows, of the product of the two arguments' lengths in
//! bytes (an upper bound of the characters compared).
//!
//! The aggregates whose one value grows with every row, `string_agg` and
//! `array_agg`, are [`BoundedAggregate`]s: each value (one per group) may hold
//! at most the same [`MAX_FUNCTION_RESULT_BYTES`], checked after each batch.
//!
//! A constant is repeated into every row of a batch, so a large one is large
//! many times over: `SELECT '<4 MB>' FROM generate_series(1, 8192)` would
//! build 32 GB in one projection. [`LiteralSizeCheck`], the optimizer's last
//! rule, refuses a plan holding a constant over [`MAX_LITERAL_BYTES`] — as
//! written, or as folded from a function of constants (`repeat('x', 100000)`).
//!
//! The same check runs wherever the function is evaluated — constant folding
//! while planning, execution here and on cluster executors (the nodes register
//! the same functions).
//!
//! The `||` operator is not a function, and a value can double with each `||`
//! (`s || s || s …`, or a recursive CTE's `SELECT s || s FROM r`): a 300-byte
//! statement built 9 GB from a 200 MB `repeat`. [`BoundedConcatOperator`], an
//! optimizer rule, turns every `||` of strings into [`ConcatOperator`] — the
//! same operation (NULL if either side is NULL) behind the same check: the sum
//! of both sides' lengths.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::kernels::length::length;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::expr::{AggregateFunctionParams, WindowFunctionParams};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Documentation, Expr,
    ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// Most bytes one call of a function listed in this module may build (one
/// batch of rows, or one constant while planning).
pub const MAX_FUNCTION_RESULT_BYTES: u64 = 256 << 20;

/// Most character pairs one call of `levenshtein` may compare (one batch of
/// rows, or one constant while planning): about a second of one thread, e.g.
/// 8,192 rows of 180-character strings.
pub const MAX_FUNCTION_WORK: u64 = 1 << 28;

/// Largest constant a plan may hold after optimization, in bytes.
pub const MAX_LITERAL_BYTES: usize = 64 << 10;

/// The optimizer's last rule: refuses a plan holding a constant over
/// [`MAX_LITERAL_BYTES`] (see the module's documentation). It changes nothing.
#[derive(Debug, Default)]
pub struct LiteralSizeCheck;

impl OptimizerRule for LiteralSizeCheck {
    fn name(&self) -> &str {
        "citylake_literal_size_check"
    }
    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }
    fn supports_rewrite(&self) -> bool {
        true
    }
    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        plan.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::Literal(value, _) = e {
                    let size = value.size();
                    if size > MAX_LITERAL_BYTES {
                        return plan_err!(
                            "a constant of {} is larger than the {} a statement's constants \
                             may hold (each is repeated into every row): read large values \
                             from a dataset",
                            bytesize::ByteSize(size as u64),
                            bytesize::ByteSize(MAX_LITERAL_BYTES as u64)
                        );
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(Transformed::no(plan))
    }
}

/// DataFusion's optimizer rules with citylake's: [`BoundedConcatOperator`]
/// first — before constant folding, which would otherwise build
/// `repeat('x', 250000000) || repeat('x', 250000000) || …` (1 GB) with
/// DataFusion's own `||` while planning — and again last, and
/// [`LiteralSizeCheck`] last; [`crate::eager::EagerAggregation`], when
/// asked for, after DataFusion's rules.
pub fn optimizer_rules(eager_aggregation: bool) -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules: Vec<Arc<dyn OptimizerRule + Send + Sync>> =
        vec![Arc::new(BoundedConcatOperator)];
    rules.extend(datafusion::optimizer::Optimizer::new().rules);
    // after DataFusion's, once filters are in the scans and joins are joins
    if eager_aggregation {
        rules.push(Arc::new(crate::eager::EagerAggregation));
    }
    rules.push(Arc::new(BoundedConcatOperator));
    rules.push(Arc::new(LiteralSizeCheck));
    rules
}

/// The optimizer rule that puts every `||` of strings behind the size check
/// (see the module's documentation): `a || b` becomes `citylake_concat_op(a,
/// b)`, its name and type unchanged. `||` of lists is `array_concat`, a
/// function, and is left alone.
#[derive(Debug, Default)]
pub struct BoundedConcatOperator;

impl OptimizerRule for BoundedConcatOperator {
    fn name(&self) -> &str {
        "citylake_bounded_concat_operator"
    }
    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }
    fn supports_rewrite(&self) -> bool {
        true
    }
    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        use datafusion::logical_expr::expr_rewriter::NamePreserver;
        use datafusion::logical_expr::{BinaryExpr, ExprSchemable, Operator};
        let mut found = false;
        plan.apply_expressions(|e| {
            e.apply(|e| {
                if matches!(e, Expr::BinaryExpr(b) if b.op == Operator::StringConcat) {
                    found = true;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        if !found {
            return Ok(Transformed::no(plan));
        }
        let inputs = plan.inputs();
        let schema = match inputs.as_slice() {
            [] => plan.schema().as_ref().clone(),
            inputs => datafusion::logical_expr::utils::merge_schema(inputs),
        };
        let names = NamePreserver::new(&plan);
        plan.map_expressions(|expr| {
            let saved = names.save(&expr);
            let rewritten = expr.transform_up(|e| {
                let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
                    return Ok(Transformed::no(e));
                };
                if *op != Operator::StringConcat {
                    return Ok(Transformed::no(e));
                }
                let Ok(result) = e.get_type(&schema) else {
                    return Ok(Transformed::no(e));
                };
                if !matches!(
                    result,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) {
                    return Ok(Transformed::no(e));
                }
                let cast = |side: &Expr| -> Expr {
                    match side.get_type(&schema) {
                        Ok(t) if t == result => side.clone(),
                        _ => Expr::Cast(datafusion::logical_expr::Cast::new(
                            Box::new(side.clone()),
                            result.clone(),
                        )),
                    }
                };
                let call =
                    Expr::ScalarFunction(datafusion::logical_expr::expr::ScalarFunction::new_udf(
                        concat_operator(),
                        vec![cast(left), cast(right)],
                    ));
                Ok(Transformed::yes(call))
            })?;
            Ok(rewritten.update_data(|e| saved.restore(e)))
        })
    }
}

/// `||` of two strings of one type (see [`BoundedConcatOperator`]).
pub fn concat_operator() -> Arc<ScalarUDF> {
    static UDF: std::sync::LazyLock<Arc<ScalarUDF>> =
        std::sync::LazyLock::new(|| Arc::new(ScalarUDF::new_from_impl(ConcatOperator::new())));
    UDF.clone()
}

/// `a || b` for strings, checked against [`MAX_FUNCTION_RESULT_BYTES`]
/// before it is built. Both sides have the result's type (the rule casts).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ConcatOperator {
    signature: Signature,
}

impl ConcatOperator {
    fn new() -> Self {
        Self {
            signature: Signature::any(2, datafusion::logical_expr::Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ConcatOperator {
    fn name(&self) -> &str {
        "citylake_concat_op"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [a, b] if a == b => Ok(a.clone()),
            _ => plan_err!("citylake_concat_op takes two strings of one type, got {arg_types:?}"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [left, right] = args.args.as_slice() else {
            return exec_err!("citylake_concat_op takes two arguments");
        };
        let size = result_size(Growth::Concat, &args.args, args.number_rows)?;
        if size > MAX_FUNCTION_RESULT_BYTES {
            return exec_err!(
                "||: the result would take up to {} for {} row(s), more than the {} one \
                 operation may build (a limit of citylake's: a value this large is not an analysis)",
                bytesize::ByteSize(size),
                args.number_rows,
                bytesize::ByteSize(MAX_FUNCTION_RESULT_BYTES)
            );
        }
        let scalar = matches!(
            (left, right),
            (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_))
        );
        let rows = if scalar { 1 } else { args.number_rows };
        let (l, r) = (left.to_array(rows)?, right.to_array(rows)?);
        let joined =
            datafusion::arrow::compute::kernels::concat_elements::concat_elements_dyn(&l, &r)?;
        if scalar {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&joined, 0)?,
            ))
        } else {
            Ok(ColumnarValue::Array(joined))
        }
    }
}

/// How a function's result size is bounded by its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    Repeat,
    Pad,
    Replace,
    RegexpReplace,
    Concat,
    ConcatWs,
    ArrayRepeat,
    ArrayResize,
    Range,
    ArrayReplace,
    ToChar,
    /// Not a size: the character pairs compared ([`MAX_FUNCTION_WORK`]).
    Pairs,
}

const BOUNDED: [(&str, Growth); 15] = [
    ("repeat", Growth::Repeat),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("replace", Growth::Replace),
    ("regexp_replace", Growth::RegexpReplace),
    ("concat", Growth::Concat),
    ("concat_ws", Growth::ConcatWs),
    ("array_repeat", Growth::ArrayRepeat),
    ("array_resize", Growth::ArrayResize),
    ("range", Growth::Range),
    ("array_replace", Growth::ArrayReplace),
    ("array_replace_n", Growth::ArrayReplace),
    ("array_replace_all", Growth::ArrayReplace),
    ("to_char", Growth::ToChar),
    ("levenshtein", Growth::Pairs),
];

/// Replaces each function of this module's list in `registry` (with its
/// aliases) by the same function behind the size check. `generate_series` is
/// `range`'s twin and is replaced with it.
pub fn register(registry: &mut dyn FunctionRegistry) -> Result<()> {
    // the `||` operator's bounded form, for plans that arrive planned (cluster nodes)
    registry.register_udf(concat_operator())?;
    for (name, growth) in BOUNDED
        .iter()
        .copied()
        .chain([("generate_series", Growth::Range)])
    {
        let Ok(inner) = registry.udf(name) else {
            continue;
        };
        registry.register_udf(Arc::new(ScalarUDF::new_from_impl(Bounded {
            inner,
            growth,
        })))?;
    }
    for name in BOUNDED_AGGREGATES {
        let Ok(inner) = registry.udaf(name) else {
            continue;
        };
        registry.register_udaf(Arc::new(AggregateUDF::new_from_impl(BoundedAggregate {
            inner,
        })))?;
    }
    Ok(())
}

/// Aggregates whose one value grows with every row it takes: `string_agg`
/// over ten million rows of a 1 kB `repeat` held 8.9 GB and reported 12.6 GB
/// at its peak, past the server's memory pool. Each of their values (one per
/// group) may hold at most [`MAX_FUNCTION_RESULT_BYTES`]: [`BoundedAggregate`].
const BOUNDED_AGGREGATES: [&str; 2] = ["string_agg", "array_agg"];

/// An aggregate whose every value is checked, after each batch it takes,
/// against [`MAX_FUNCTION_RESULT_BYTES`] (the size its accumulator reports).
/// Everything else is the aggregate's own: its planning (ordering, reversal,
/// coercion, names) is forwarded, and a grouped form it has stays (the
/// grouped aggregation's memory is the pool's to bound) — except its
/// reversal: DataFusion may run an ordered aggregate over input sorted the
/// other way by its reversed form, and through a wrapper that gave
/// `array_agg(DISTINCT v ORDER BY v)` in descending order; it runs in the
/// order asked for instead.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BoundedAggregate {
    inner: Arc<AggregateUDF>,
}

impl AggregateUDFImpl for BoundedAggregate {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn schema_name(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.inner.inner().schema_name(params)
    }
    fn human_display(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.inner.inner().human_display(params)
    }
    fn window_function_schema_name(&self, params: &WindowFunctionParams) -> Result<String> {
        self.inner.inner().window_function_schema_name(params)
    }
    fn display_name(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.inner.inner().display_name(params)
    }
    fn window_function_display_name(&self, params: &WindowFunctionParams) -> Result<String> {
        self.inner.inner().window_function_display_name(params)
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.inner().return_type(arg_types)
    }
    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        self.inner.inner().return_field(arg_fields)
    }
    fn is_nullable(&self) -> bool {
        self.inner.inner().is_nullable()
    }
    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(BoundedAccumulator {
            inner: self.inner.inner().accumulator(acc_args)?,
            name: self.inner.name().to_string(),
            answered: 0,
        }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.inner().state_fields(args)
    }
    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.inner().groups_accumulator_supported(args)
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn datafusion::logical_expr::GroupsAccumulator>> {
        self.inner.inner().create_groups_accumulator(args)
    }
    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(BoundedAccumulator {
            inner: self.inner.inner().create_sliding_accumulator(args)?,
            name: self.inner.name().to_string(),
            answered: 0,
        }))
    }
    fn with_beneficial_ordering(
        self: Arc<Self>,
        beneficial_ordering: bool,
    ) -> Result<Option<Arc<dyn AggregateUDFImpl>>> {
        Ok(self
            .inner
            .inner()
            .clone()
            .with_beneficial_ordering(beneficial_ordering)?
            .map(|inner| {
                Arc::new(Self {
                    inner: Arc::new(AggregateUDF::new_from_shared_impl(inner)),
                }) as Arc<dyn AggregateUDFImpl>
            }))
    }
    fn order_sensitivity(&self) -> datafusion::logical_expr::utils::AggregateOrderSensitivity {
        self.inner.inner().order_sensitivity()
    }
    fn simplify(
        &self,
    ) -> Option<datafusion::logical_expr::function::AggregateFunctionSimplification> {
        self.inner.inner().simplify()
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.inner().coerce_types(arg_types)
    }
    fn is_descending(&self) -> Option<bool> {
        self.inner.inner().is_descending()
    }
    fn default_value(&self, data_type: &DataType) -> Result<datafusion::common::ScalarValue> {
        self.inner.inner().default_value(data_type)
    }
    fn supports_null_handling_clause(&self) -> bool {
        self.inner.inner().supports_null_handling_clause()
    }
    fn supports_within_group_clause(&self) -> bool {
        self.inner.inner().supports_within_group_clause()
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.inner().documentation()
    }
    fn set_monotonicity(&self, data_type: &DataType) -> datafusion::logical_expr::SetMonotonicity {
        self.inner.inner().set_monotonicity(data_type)
    }
}

/// An accumulator that refuses to hold more than [`MAX_FUNCTION_RESULT_BYTES`],
/// or to hand out more in all: as a window function it answers every row
/// with its value so far (`string_agg(…) OVER (ORDER BY v)` over 10,000 rows
/// of 30 kB held 23 GB before the kernel ended the server), and the values it
/// answers are counted too, whatever its own size says.
#[derive(Debug)]
struct BoundedAccumulator {
    inner: Box<dyn Accumulator>,
    name: String,
    /// Bytes of the values it answered so far.
    answered: u64,
}

impl BoundedAccumulator {
    fn check(&self) -> Result<()> {
        let size = self.inner.size() as u64;
        if size > MAX_FUNCTION_RESULT_BYTES {
            return exec_err!(
                "{}: one value would hold more than {} ({} so far), more than one aggregate \
                 may build (a limit of citylake's: a value this large is not an analysis)",
                self.name,
                bytesize::ByteSize(MAX_FUNCTION_RESULT_BYTES),
                bytesize::ByteSize(size)
            );
        }
        Ok(())
    }
}

impl Accumulator for BoundedAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.update_batch(values)?;
        self.check()
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner.merge_batch(states)?;
        self.check()
    }
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.retract_batch(values)
    }
    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }
    fn evaluate(&mut self) -> Result<datafusion::common::ScalarValue> {
        let value = self.inner.evaluate()?;
        self.answered += value.size() as u64;
        if self.answered > MAX_FUNCTION_RESULT_BYTES {
            return exec_err!(
                "{}: its values would take more than {} ({} so far), more than one aggregate \
                 may build (a limit of citylake's: a value this large is not an analysis)",
                self.name,
                bytesize::ByteSize(MAX_FUNCTION_RESULT_BYTES),
                bytesize::ByteSize(self.answered)
            );
        }
        Ok(value)
    }
    fn state(&mut self) -> Result<Vec<datafusion::common::ScalarValue>> {
        self.inner.state()
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
}

/// A function whose every call is checked against [`MAX_FUNCTION_RESULT_BYTES`]
/// before it runs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Bounded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let size = result_size(self.growth, &args.args, args.number_rows)?;
        if self.growth == Growth::Pairs {
            if size > MAX_FUNCTION_WORK {
                return exec_err!(
                    "{}: {} row(s) would compare up to {size} pairs of characters, more than the \
                     {MAX_FUNCTION_WORK} one call may (a limit of citylake's: one call cannot be \
                     stopped by a timeout or a cancel); compare shorter strings",
                    self.name(),
                    args.number_rows
                );
            }
        } else if size > MAX_FUNCTION_RESULT_BYTES {
            return exec_err!(
                "{}: the result would take up to {} for {} row(s), more than the {} one call \
                 may build (a limit of citylake's: a value this large is not an analysis)",
                self.name(),
                bytesize::ByteSize(size),
                args.number_rows,
                bytesize::ByteSize(MAX_FUNCTION_RESULT_BYTES)
            );
        }
        self.inner.invoke_with_args(args)
    }
}

/// One argument's per-row figure (a length, a count); nulls count 0.
enum PerRow {
    Same(i64),
    Each(Vec<i64>),
}

impl PerRow {
    fn signed(&self, row: usize) -> i64 {
        match self {
            PerRow::Same(v) => *v,
            PerRow::Each(v) => v.get(row).copied().unwrap_or(0),
        }
    }

    fn at(&self, row: usize) -> u64 {
        match self {
            PerRow::Same(v) => (*v).max(0) as u64,
            PerRow::Each(v) => v.get(row).copied().unwrap_or(0).max(0) as u64,
        }
    }
}

fn per_row(arg: &ColumnarValue, figure: impl Fn(&ArrayRef) -> Result<ArrayRef>) -> Result<PerRow> {
    let (array, scalar) = match arg {
        ColumnarValue::Array(a) => (a.clone(), false),
        ColumnarValue::Scalar(s) => (s.to_array_of_size(1)?, true),
    };
    let figures = figure(&array)?;
    let ints = cast_with_options(&figures, &DataType::Int64, &CastOptions::default())?;
    let ints = ints.as_primitive::<Int64Type>();
    let values: Vec<i64> = (0..ints.len())
        .map(|i| if ints.is_null(i) { 0 } else { ints.value(i) })
        .collect();
    Ok(if scalar {
        PerRow::Same(values.first().copied().unwrap_or(0))
    } else {
        PerRow::Each(values)
    })
}

/// Byte lengths of a text (or binary) argument; 16 for any other type.
fn bytes(arg: &ColumnarValue) -> Result<PerRow> {
    match arg.data_type() {
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView => per_row(arg, |a| Ok(length(a)?)),
        _ => Ok(PerRow::Same(16)),
    }
}

/// Elements of a list argument (a non-list counts as one).
fn elements(arg: &ColumnarValue) -> Result<PerRow> {
    match arg.data_type() {
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            per_row(arg, |a| Ok(length(a)?))
        }
        _ => Ok(PerRow::Same(1)),
    }
}

/// A date or timestamp argument in nanoseconds since the epoch.
fn nanoseconds(arg: &ColumnarValue) -> Result<PerRow> {
    per_row(arg, |a| {
        Ok(datafusion::arrow::compute::cast(
            a,
            &DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Nanosecond, None),
        )?)
    })
}

/// An interval argument's shortest length in nanoseconds (a month as 28 days).
fn step_nanoseconds(arg: &ColumnarValue) -> Result<PerRow> {
    use datafusion::arrow::datatypes::{IntervalMonthDayNanoType, IntervalUnit};
    const DAY: i128 = 86_400_000_000_000;
    per_row(arg, |a| {
        let steps =
            datafusion::arrow::compute::cast(a, &DataType::Interval(IntervalUnit::MonthDayNano))?;
        let steps = steps.as_primitive::<IntervalMonthDayNanoType>();
        let ns: datafusion::arrow::array::Int64Array = steps
            .iter()
            .map(|v| {
                v.map(|v| {
                    let total =
                        v.months as i128 * 28 * DAY + v.days as i128 * DAY + v.nanoseconds as i128;
                    total.clamp(i64::MIN as i128, i64::MAX as i128) as i64
                })
            })
            .collect();
        Ok(Arc::new(ns) as ArrayRef)
    })
}

/// The values of an integer argument (a non-integer one: none to bound).
fn ints(arg: &ColumnarValue) -> Result<Option<PerRow>> {
    if !arg.data_type().is_integer() {
        return Ok(None);
    }
    Ok(Some(per_row(arg, |a| Ok(a.clone()))?))
}

/// The most bytes `growth`'s function builds from `args` over `rows` rows.
fn result_size(growth: Growth, args: &[ColumnarValue], rows: usize) -> Result<u64> {
    let arg = |i: usize| args.get(i);
    let sum = |f: &dyn Fn(usize) -> u64| (0..rows.max(1)).fold(0u64, |t, r| t.saturating_add(f(r)));
    Ok(match growth {
        Growth::Repeat => {
            let (Some(s), Some(Some(n))) = (arg(0), arg(1).map(ints).transpose()?) else {
                return Ok(0);
            };
            let s = bytes(s)?;
            sum(&|r| s.at(r).saturating_mul(n.at(r)))
        }
        Growth::Pad => {
            let Some(Some(n)) = arg(1).map(ints).transpose()? else {
                return Ok(0);
            };
            sum(&|r| n.at(r).saturating_mul(4))
        }
        Growth::Replace => {
            let (Some(s), Some(from), Some(to)) = (arg(0), arg(1), arg(2)) else {
                return Ok(0);
            };
            let (s, from, to) = (bytes(s)?, bytes(from)?, bytes(to)?);
            sum(&|r| {
                let (s, from, to) = (s.at(r), from.at(r), to.at(r));
                let places = s.checked_div(from).unwrap_or(s + 1);
                s.saturating_add(places.saturating_mul(to))
            })
        }
        Growth::RegexpReplace => {
            let (Some(s), Some(with)) = (arg(0), arg(2)) else {
                return Ok(0);
            };
            let s = bytes(s)?;
            let references = references(with)?;
            let with = bytes(with)?;
            sum(&|r| {
                let (s, with, refs) = (s.at(r), with.at(r), references.at(r));
                let each = with.saturating_add(refs.saturating_mul(s));
                s.saturating_add((s + 1).saturating_mul(each))
            })
        }
        Growth::Concat | Growth::ConcatWs => {
            let parts = args.iter().map(bytes).collect::<Result<Vec<_>>>()?;
            // concat_ws: the separator (the first argument) between each two parts
            let separators = match growth {
                Growth::ConcatWs => parts.len() as u64,
                _ => 0,
            };
            sum(&|r| {
                let total = parts.iter().fold(0u64, |t, p| t.saturating_add(p.at(r)));
                let separator = parts.first().map_or(0, |p| p.at(r));
                total.saturating_add(separator.saturating_mul(separators))
            })
        }
        Growth::ArrayRepeat => {
            let (Some(x), Some(Some(n))) = (arg(0), arg(1).map(ints).transpose()?) else {
                return Ok(0);
            };
            let x = bytes(x)?;
            sum(&|r| x.at(r).saturating_add(8).saturating_mul(n.at(r)))
        }
        Growth::ArrayResize => {
            let Some(Some(n)) = arg(1).map(ints).transpose()? else {
                return Ok(0);
            };
            sum(&|r| n.at(r).saturating_mul(16))
        }
        Growth::ArrayReplace => {
            let (Some(list), Some(to)) = (arg(0), arg(2)) else {
                return Ok(0);
            };
            let (elements, to) = (elements(list)?, bytes(to)?);
            sum(&|r| elements.at(r).saturating_mul(to.at(r).saturating_add(8)))
        }
        Growth::Pairs => {
            let (Some(a), Some(b)) = (arg(0), arg(1)) else {
                return Ok(0);
            };
            let (a, b) = (bytes(a)?, bytes(b)?);
            sum(&|r| a.at(r).saturating_mul(b.at(r)))
        }
        Growth::ToChar => {
            let Some(format) = arg(1) else {
                return Ok(0);
            };
            let format = bytes(format)?;
            sum(&|r| format.at(r).saturating_mul(16).saturating_add(32))
        }
        Growth::Range if args.first().is_some_and(|a| a.data_type().is_temporal()) => {
            // range(start, stop, step) of dates or timestamps, in nanoseconds
            let (Some(start), Some(stop), Some(step)) = (arg(0), arg(1), arg(2)) else {
                return Ok(0);
            };
            let (start, stop, step) = (
                nanoseconds(start)?,
                nanoseconds(stop)?,
                step_nanoseconds(step)?,
            );
            sum(&|r| {
                let span = (stop.signed(r) as i128 - start.signed(r) as i128).unsigned_abs();
                let step = (step.signed(r) as i128).unsigned_abs().max(1);
                u64::try_from(span / step + 1)
                    .unwrap_or(u64::MAX)
                    .saturating_mul(8)
            })
        }
        Growth::Range => {
            // range(stop) | range(start, stop) | range(start, stop, step)
            let numbers = args.iter().map(ints).collect::<Result<Vec<_>>>()?;
            let Some(numbers) = numbers.into_iter().collect::<Option<Vec<_>>>() else {
                return Ok(0); // dates and timestamps: not bounded here
            };
            sum(&|r| {
                let (start, stop, step) = match numbers.as_slice() {
                    [stop] => (0, stop.signed(r), 1),
                    [start, stop] => (start.signed(r), stop.signed(r), 1),
                    [start, stop, step, ..] => (start.signed(r), stop.signed(r), step.signed(r)),
                    [] => (0, 0, 1),
                };
                let span = (stop as i128 - start as i128).unsigned_abs();
                let step = (step as i128).unsigned_abs().max(1);
                let elements = u64::try_from(span / step + 1).unwrap_or(u64::MAX);
                elements.saturating_mul(8)
            })
        }
    })
}

/// How many group references (`\1`, `$1`, `${name}`) each replacement holds.
fn references(with: &ColumnarValue) -> Result<PerRow> {
    per_row(with, |a| {
        let text = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let counts: datafusion::arrow::array::Int64Array = text
            .iter()
            .map(|v| v.map(|v| v.matches(['\\', '$']).count() as i64))
            .collect();
        Ok(Arc::new(counts) as ArrayRef)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn run(sql: &str) -> Result<String> {
        let state = SessionContext::new().state();
        let mut state = datafusion::execution::SessionStateBuilder::new_from_existing(state)
            .with_optimizer_rules(optimizer_rules(false))
            .build();
        register(&mut state)?;
        let ctx = SessionContext::new_with_state(state);
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(datafusion::arrow::util::pretty::pretty_format_batches(&batches)?.to_string())
    }

    /// The error of a statement that must be refused.
    async fn refused(sql: &str) -> String {
        match run(sql).await {
            Ok(out) => panic!(
                "{} was answered: {}",
                &sql[..sql.floor_char_boundary(200)],
                &out[..out.floor_char_boundary(200)]
            ),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn small_results_are_built_as_before() {
        for sql in [
            "SELECT repeat('ab', 3), lpad('7', 3, '0'), rpad('x', 2), replace('a-b', '-', '+')",
            "SELECT regexp_replace('13812345678', '(\\d{3})\\d{4}(\\d{4})', '\\1****\\2')",
            "SELECT concat('a', 'b'), concat_ws(',', 'a', 'b'), array_repeat(1, 3)",
            "SELECT array_resize([1], 3), range(5), generate_series(1, 3), range(10, 0, -3)",
            "SELECT range(DATE '2025-01-01', DATE '2025-12-31', INTERVAL '1 day'), array_replace_all([1, 2, 1], 1, 3)",
            "SELECT to_char(DATE '2025-01-01', '%Y-%m-%d'), date_format(TIMESTAMP '2025-01-01 08:00:00', '%H:%M')",
            "SELECT repeat(v, 2) FROM (VALUES ('a'), (NULL)) t(v)",
        ] {
            run(sql).await.unwrap();
        }
        let out = run(
            "SELECT regexp_replace('13812345678', '(\\d{3})\\d{4}(\\d{4})', '\\1****\\2') AS m",
        )
        .await
        .unwrap();
        assert!(out.contains("138****5678"), "{out}");
    }

    #[tokio::test]
    async fn huge_results_are_refused_before_they_are_built() {
        for (sql, name) in [
            ("SELECT repeat('x', 2147483647)", "repeat"),
            ("SELECT lpad('x', 2000000000)", "lpad"),
            ("SELECT rpad('x', 100000000, 'ab')", "rpad"),
            (
                "SELECT replace(repeat('a', 60000), 'a', repeat('b', 60000))",
                "replace",
            ),
            (
                "SELECT replace(repeat('a', 60000), '', repeat('b', 60000))",
                "replace",
            ),
            (
                "SELECT regexp_replace(repeat('a', 60000), '', repeat('b', 60000), 'g')",
                "regexp_replace",
            ),
            ("SELECT array_repeat('x', 100000000)", "array_repeat"),
            ("SELECT array_resize([1], 100000000)", "array_resize"),
            ("SELECT range(1, 500000000)", "range"),
            (
                "SELECT cardinality(range(TIMESTAMP '2025-01-01', TIMESTAMP '2025-01-05', INTERVAL '1 millisecond'))",
                "range",
            ),
            (
                "SELECT generate_series(DATE '1970-01-01', DATE '2100-01-01', INTERVAL '1 second')",
                "generate_series",
            ),
            (
                "SELECT array_replace_all(array_repeat('a', 5000), 'a', repeat('b', 60000))",
                "array_replace_all",
            ),
            (
                "SELECT to_char(to_timestamp(value), repeat('%c', 30000)) FROM generate_series(1, 2000)",
                "to_char",
            ),
            (
                "SELECT generate_series(-9223372036854775807, 9223372036854775807)",
                "generate_series",
            ),
            // per batch: many rows of a moderate value
            (
                "SELECT repeat(CAST(value AS VARCHAR), 50000) FROM generate_series(1, 8192)",
                "repeat",
            ),
        ] {
            let err = refused(sql).await;
            assert!(
                err.contains(&format!("{name}: the result would take up to"))
                    && err.contains("256"),
                "{sql}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn the_concat_operator_is_bounded_and_answers_as_before() {
        // one value doubled by `||` (not foldable: random() * 0), and by a recursive CTE
        for sql in [
            "SELECT length(s || s) FROM (SELECT repeat('x', 200000000 + CAST(random() * 0 AS BIGINT)) AS s)",
            "SELECT length(s || s || s) FROM (SELECT repeat(arrow_cast('x', 'LargeUtf8'), \
             100000000 + CAST(random() * 0 AS BIGINT)) AS s)",
            "WITH RECURSIVE r(s, n) AS (SELECT arrow_cast('x', 'LargeUtf8'), 1 UNION ALL \
             SELECT s || s, n + 1 FROM r WHERE n < 40) SELECT max(length(s)) FROM r",
        ] {
            let err = refused(sql).await;
            assert!(
                err.contains("||: the result would take up to"),
                "{sql}: {err}"
            );
        }
        // (red team, second round) constants: DataFusion's own `||` folded them to 1 GB while
        // planning; now the bounded `||` cannot fold them, and the constants it keeps are refused
        let sql = "SELECT length(repeat('x', 250000000) || repeat('x', 250000000) || \
                   repeat('x', 250000000) || repeat('x', 250000000))";
        let err = run(sql).await.unwrap_err().to_string();
        assert!(err.contains("a statement's constants may hold"), "{err}");
        // small values: the same answers, names and types as DataFusion's own `||`
        let out = run(
            "SELECT v || 'b' AS a, v || NULL AS b, 'x' || 1 AS c, arrow_cast(v, 'Utf8View') || v AS d, \
             arrow_typeof(arrow_cast(v, 'LargeUtf8') || v) AS e, [1] || [2] AS f \
             FROM (VALUES ('a'), (NULL)) t(v)",
        )
        .await
        .unwrap();
        assert!(out.contains("| ab | "), "{out}");
        assert!(out.contains("| x1 | aa | LargeUtf8 | [1, 2] |"), "{out}");
        let unnamed = run("SELECT v || 'b' FROM (VALUES ('a')) t(v)")
            .await
            .unwrap();
        assert!(unnamed.contains("t.v || Utf8(\"b\")"), "{unnamed}");
    }

    #[tokio::test]
    async fn large_constants_are_refused_as_written_and_as_folded() {
        let big = "x".repeat(MAX_LITERAL_BYTES + 1);
        for sql in [
            format!("SELECT '{big}' FROM generate_series(1, 8192)"),
            format!("SELECT v || '{big}' FROM (VALUES ('a')) t(v)"),
            "SELECT repeat('x', 100000) FROM generate_series(1, 8192)".to_string(),
            "SELECT 1 WHERE 'a' IN (SELECT repeat('y', 70000))".to_string(),
        ] {
            let err = refused(&sql).await;
            assert!(err.contains("a statement's constants"), "{err}");
        }
        // at the limit: answered; a large constant folded away is no danger
        let fits = "x".repeat(MAX_LITERAL_BYTES - 64);
        run(&format!("SELECT v || '{fits}' FROM (VALUES ('a')) t(v)"))
            .await
            .unwrap();
        run(&format!("SELECT length('{big}')")).await.unwrap();
    }

    #[tokio::test]
    async fn aggregates_that_grow_with_their_rows_are_bounded() {
        // attack: ten million rows of 1 kB into one value (8.9 GB held, past the pool)
        for sql in [
            "SELECT length(string_agg(repeat('x', 1000), '')) FROM generate_series(1, 10000000)",
            "SELECT cardinality(array_agg(repeat('x', 1000))) FROM generate_series(1, 10000000)",
            "SELECT g, length(string_agg(repeat('x', 1000), '' ORDER BY i)) \
             FROM (SELECT i % 2 AS g, i FROM generate_series(1, 2000000) t(i)) GROUP BY g",
        ] {
            let err = refused(sql).await;
            assert!(
                err.contains("one value would hold more than 256"),
                "{sql}: {err}"
            );
        }
        // (red team, second round) a window answering every row with its running value
        // (each small, 23 GB in all), and a plain array_agg whose accumulator under-reports
        // its size: refused by what they answer
        for sql in [
            "SELECT max(length(s)) FROM (SELECT string_agg(repeat('x', 30000 + v * 0) || \
             CAST(v AS TEXT), '') OVER (ORDER BY v) s FROM generate_series(1, 10000) g(v))",
            "SELECT cardinality(a) FROM (SELECT array_agg(repeat('x', 30000 + v * 0) || \
             CAST(v AS TEXT)) a FROM generate_series(1, 20000) g(v))",
        ] {
            let err = refused(sql).await;
            assert!(
                err.contains("its values would take more than 256"),
                "{sql}: {err}"
            );
        }
        // small ones: the same answers, ordering included, names as DataFusion's
        let out = run(
            "SELECT string_agg(v, ',' ORDER BY v DESC), array_agg(v ORDER BY v), \
             array_agg(DISTINCT v ORDER BY v) FROM (VALUES ('b'), ('a'), ('c'), ('a')) t(v)",
        )
        .await
        .unwrap();
        assert!(out.contains("| c,b,a,a "), "{out}");
        assert!(out.contains("| [a, a, b, c] "), "{out}");
        assert!(out.contains("| [a, b, c] "), "{out}");
        assert!(
            out.contains("string_agg(t.v,Utf8(\",\")) ORDER BY [t.v DESC NULLS FIRST]"),
            "{out}"
        );
        let grouped = run(
            "SELECT g, string_agg(v, '') AS s FROM (VALUES (1, 'x'), (1, 'y'), (2, 'z')) t(g, v) \
             GROUP BY g ORDER BY g",
        )
        .await
        .unwrap();
        assert!(
            grouped.contains("| 1 | xy |") || grouped.contains("| 1 | yx |"),
            "{grouped}"
        );
        assert!(grouped.contains("| 2 | z  |"), "{grouped}");
    }
}

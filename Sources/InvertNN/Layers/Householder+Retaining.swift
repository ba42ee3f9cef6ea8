import RealModule

/// Taped training (``RetainingLayer``): on the blocked path, the backward walks the compact-WY
/// blocks in reverse and rebuilds each block's output from the next one's by orthogonality, one of
/// its three GEMMs over `[dY; Y]` (about 2Bn² of its 6Bn² flops). A retaining call keeps the block
/// outputs instead (`(blocks - 1)·B·n` entries), so the backward's third GEMM runs over `dY` only,
/// and each block's projection `A = X Ũᵀ` (`B·m` entries), so its first GEMM does too.
/// The materialized path needs nothing more than `Y`, so it retains nothing; neither do
/// batches whose kept outputs would exceed ``retainedEntryLimit`` entries.
extension Householder: RetainingLayer {
    /// What a retaining call keeps for the next backward of the same direction.
    struct RetainedBlocks {
        let isForward: Bool
        /// The storage of the map's returned output (shared, so the check is O(1) when unchanged).
        let output: [T]
        /// The reflector and bias storages when the outputs were computed.
        let keys: ParameterVersions
        /// Slot `j` holds the output of the `(j+1)`-th block in application order; then each
        /// block's projection `A` (`rows × c` at offset `start · rows`).
        let blockOutputs: [T]
    }

    /// The largest number of entries a retaining call keeps (2²⁵: 128 MiB in Float).
    public static var retainedEntryLimit: Int { 1 << 25 }

    public func forwardRetaining(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try x.requireColumns(features, "\(name).forward")
        let workspace = context.buffers(for: self)
        guard let (y, saved) = try applyRetaining(x, transposed: true, addingBias: true, workspace: workspace) else {
            retainedBlocks = nil
            return try forward(x, context: &context)
        }
        retainedBlocks = RetainedBlocks(isForward: true, output: y.storage, keys: retentionKeys(), blockOutputs: saved)
        return output(y, rows: x.rows, workspace: workspace)
    }

    public func inverseRetaining(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try y.requireColumns(features, "\(name).inverse")
        let workspace = context.buffers(for: self)
        guard let (x, saved) = try applyRetaining(centered(y, workspace: workspace), transposed: false, workspace: workspace) else {
            retainedBlocks = nil
            return try inverse(y, context: &context)
        }
        retainedBlocks = RetainedBlocks(isForward: false, output: x.storage, keys: retentionKeys(), blockOutputs: saved)
        return output(x, rows: y.rows, forward: false, workspace: workspace)
    }

    /// Drops the kept block outputs.
    public func releaseRetained() { retainedBlocks = nil }

    /// The bias-free map applied blockwise to `input` (plus the bias if `addingBias`), with the
    /// block outputs kept; `nil` when the backward would take the materialized path, there is a
    /// single block, or the outputs would exceed ``retainedEntryLimit``. Both are borrowed from
    /// `workspace`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func applyRetaining(
        _ input: Matrix<T>, transposed: Bool, addingBias: Bool = false, workspace: LayerBuffers<T>
    ) throws -> (Matrix<T>, [T])? {
        let plan = try currentPlan(workspace: workspace)
        let rows = input.rows, n = features, blocks = plan.blocks.count
        guard !prefersMaterialized(plan, batch: rows, backward: true), blocks > 1,
              let count = Self.retainedCount(rows: rows, features: n, blocks: blocks, reflectors: reflectorCount),
              count <= Self.retainedEntryLimit  // (checked without building an array of sizes)
        else { return nil }
        let outputsCount = (blocks - 1) * rows * n
        // The output and the kept block outputs go to borrowed buffers (the kept ones are dropped
        // by the backward, so the next step writes them in place); every entry is written below.
        var out = workspace.copy(transposed ? HouseholderSlot.output : HouseholderSlot.inverseOutput, of: input)
        var saved = workspace.take(HouseholderSlot.blockOutputs, count: count)
        defer { workspace.keep(HouseholderSlot.blockOutputs, saved) }
        out.storage.withUnsafeMutableBufferPointer { po in
            saved.withUnsafeMutableBufferPointer { ps in
                Self.applyBlocks(plan, to: po.baseAddress!, rows: rows, n: n, transposed: transposed, saving: ps.baseAddress,
                                 savingProjections: ps.baseAddress! + outputsCount, scratch: workspace)
            }
        }
        if addingBias { addBias(to: &out, sign: 1) }
        return (out, saved)
    }

    /// The kept block outputs if the last retaining call was in this direction, for this output,
    /// with the same reflectors and bias and the plan's block count; releases them either way.
    func keptBlockOutputs(plan: Plan, forward: Bool, output: Matrix<T>, rows: Int) -> [T]? {
        defer { retainedBlocks = nil }
        guard let kept = retainedBlocks, kept.isForward == forward, kept.output == output.storage,
              kept.blockOutputs.count
                == Self.retainedCount(rows: rows, features: features, blocks: plan.blocks.count, reflectors: reflectorCount)
        else { return nil }
        guard kept.keys == retentionKeys() else { return nil }
        return kept.blockOutputs
    }

    /// `(blocks - 1)·rows·n` block outputs plus `rows·m` projections `A = X Ũᵀ`, or `nil` on
    /// overflow.
    static func retainedCount(rows: Int, features n: Int, blocks: Int, reflectors m: Int) -> Int? {
        let (perBlock, o1) = rows.multipliedReportingOverflow(by: n)
        let (outputs, o2) = perBlock.multipliedReportingOverflow(by: max(0, blocks - 1))
        let (projections, o3) = rows.multipliedReportingOverflow(by: m)
        let (count, o4) = outputs.addingReportingOverflow(projections)
        return o1 || o2 || o3 || o4 ? nil : count
    }

    /// The versions of the parameters the kept outputs depend on (reflectors and bias).
    private func retentionKeys() -> ParameterVersions {
        ParameterVersions(reflectors.version, bias?.version ?? 0)
    }
}

/// The ``Parameter/version`` of up to three parameters, compared to tell whether a cache is
/// still valid (unused places hold 0).
struct ParameterVersions: Equatable {
    var first: UInt64, second: UInt64, third: UInt64
    init(_ first: UInt64, _ second: UInt64 = 0, _ third: UInt64 = 0) {
        self.first = first
        self.second = second
        self.third = third
    }
}

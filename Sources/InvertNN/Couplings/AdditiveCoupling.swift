import RealModule

/// The additive coupling layer of NICE (Dinh et al. 2014, "NICE: Non-linear Independent
/// Components Estimation", §3.2): a ``Coupling`` with the ``AdditiveTransformer``,
/// `y_b = x_b + t(x_a)`, `x_b = y_b - t(y_a)`, log-det 0.
///
/// Shapes `[batch, D]`; the conditioner maps `d (+ contextFeatures)` to `D - d` shifts.
/// Checkpoints name it `AdditiveCoupling`. Build one with
/// ``Coupling/init(features:transformer:hiddenSizes:conditioningBlock:activation:firstBlockSize:zeroInitializeLastLayer:contextFeatures:using:)``
/// and `transformer: AdditiveTransformer()`.
public typealias AdditiveCoupling<T: Scalar> = Coupling<AdditiveTransformer<T>>

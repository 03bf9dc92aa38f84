/// Parley's version and the version of its wire envelopes between nodes.
public enum ParleyVersion {
    public static let current = "0.1.0"
}

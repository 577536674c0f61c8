/// The version of Kosh, as `kosh --version` prints it. Defined here only.
public enum KoshVersion {
    public static let current = "0.1.0"
}

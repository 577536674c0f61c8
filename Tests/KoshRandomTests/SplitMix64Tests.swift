import KoshRandom
import Testing

@Suite struct SplitMix64Tests {
    /// Vigna's reference splitmix64.c from seed 1234567 (checked again with a Python port of it).
    @Test func referenceVector() {
        var random = SplitMix64(seed: 1_234_567)
        let expected: [UInt64] = [6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423,
                                  4_593_380_528_125_082_431, 16_408_922_859_458_223_821]
        #expect((0..<5).map { _ in random.next() } == expected)
    }

    /// The same seed replays the same draws, also through the standard library's API.
    @Test func sameSeedSameDraws() {
        var a = SplitMix64(seed: 42)
        var b = SplitMix64(seed: 42)
        #expect((0..<8).map { _ in Int.random(in: 0..<1_000, using: &a) } == (0..<8).map { _ in Int.random(in: 0..<1_000, using: &b) })
    }
}

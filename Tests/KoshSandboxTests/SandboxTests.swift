import Testing
@testable import KoshSandbox

@Suite struct SandboxPlaceholderTests {
    @Test func configurationDefaults() {
        #expect(SandboxConfiguration().secret == SandboxConfiguration.defaultSecret)
    }
}

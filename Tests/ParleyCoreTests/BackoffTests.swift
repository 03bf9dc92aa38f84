import ParleyCore
import Testing

@Suite("Backoff")
struct BackoffTests {
    let policy = Backoff(initial: .milliseconds(100), maximum: .seconds(2), multiplier: 2, jitter: 0.5)

    @Test func delaysGrowExponentiallyUpToTheCap() {
        #expect(policy.ceiling(attempt: 0) == .milliseconds(100))
        #expect(policy.ceiling(attempt: 1) == .milliseconds(200))
        #expect(policy.ceiling(attempt: 4) == .milliseconds(1600))
        #expect(policy.ceiling(attempt: 5) == .seconds(2))
        #expect(policy.ceiling(attempt: 1000) == .seconds(2))
    }

    @Test func jitterStaysWithinItsFraction() {
        #expect(policy.delay(attempt: 3, unit: 0) == .milliseconds(400))
        #expect(policy.delay(attempt: 3, unit: 1) == .milliseconds(800))
        for _ in 0..<1000 {
            let delay = policy.delay(attempt: 2)
            #expect(delay >= .milliseconds(200) && delay <= .milliseconds(400))
        }
    }

    @Test func stateWaitsBetweenAttemptsAndResetsOnSuccess() {
        var state = BackoffState(policy: policy)
        let start = Moment(nanoseconds: 1_000_000_000)
        #expect(state.mayAttempt(at: start))
        let first = state.recordFailure(at: start, unit: 1)
        #expect(first == .milliseconds(100))
        #expect(!state.mayAttempt(at: start + .milliseconds(99)))
        #expect(state.mayAttempt(at: start + .milliseconds(100)))
        #expect(state.recordFailure(at: start + .milliseconds(100), unit: 1) == .milliseconds(200))
        state.recordSuccess()
        #expect(state.attempts == 0)
        #expect(state.mayAttempt(at: start))
    }
}

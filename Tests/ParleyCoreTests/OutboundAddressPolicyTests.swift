import ParleyCore
import Testing

@Suite("Outbound address policy (where users' URLs may lead)")
struct OutboundAddressPolicyTests {
    @Test func parsesAddressesAndRefusesWhatIsNotOne() {
        #expect(IPAddress("192.0.2.1")?.bytes == [192, 0, 2, 1])
        #expect(IPAddress("::1")?.bytes == Array(repeating: 0, count: 15) + [1])
        #expect(IPAddress("[2001:db8::8]")?.bytes == [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [8])
        #expect(IPAddress("::ffff:10.1.2.3")?.embeddedIPv4 == IPAddress("10.1.2.3"))
        #expect(IPAddress("1:2:3:4:5:6:7:8")?.description == "1:2:3:4:5:6:7:8")
        for text in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "010.0.0.1", "1.2.3.-4", "example.org", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9",
                     "12345::", "g::1", "1.2.3.4:80"] {
            #expect(IPAddress(text) == nil, "\(text)")
        }
    }

    @Test func networksContainTheirAddresses() throws {
        let ten = try #require(IPNetwork("10.0.0.0/8"))
        #expect(ten.contains(IPAddress("10.255.0.1")!) && !ten.contains(IPAddress("11.0.0.1")!))
        let odd = try #require(IPNetwork("172.16.0.0/12"))
        #expect(odd.contains(IPAddress("172.31.255.255")!) && !odd.contains(IPAddress("172.32.0.0")!))
        #expect(IPNetwork("fd00::/8")?.contains(IPAddress("fd12::1")!) == true)
        #expect(IPNetwork(" 192.0.2.7 ")?.prefixLength == 32, "a bare address is one address")
        #expect(IPNetwork("10.0.0.0/33") == nil && IPNetwork("10.0.0.0/x") == nil && IPNetwork("ten/8") == nil)
        #expect(!ten.contains(IPAddress("::ffff:10.0.0.1")!), "families do not mix in a network")
    }

    @Test func onlyPublicAddressesUnlessTheOperatorAllowsANetwork() throws {
        let refused = ["127.0.0.1", "10.0.0.5", "172.20.1.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",
                       "255.255.255.255", "198.18.0.1", "::1", "::", "fe80::1", "fd00::1", "ff02::1", "::ffff:127.0.0.1",
                       "::ffff:169.254.169.254", "64:ff9b::10.0.0.1", "2002:c0a8:0101::1"]
        let policy = OutboundAddressPolicy()
        for text in refused { #expect(!policy.permits(IPAddress(text)!), "\(text)") }
        for text in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "172.32.0.1"] {
            #expect(policy.permits(IPAddress(text)!), "\(text)")
        }
        let networks = try OutboundAddressPolicy.networks("127.0.0.0/8, fd00::/8").get()
        let lenient = OutboundAddressPolicy(allowed: networks)
        #expect(lenient.permits(IPAddress("127.0.0.1")!) && lenient.permits(IPAddress("::ffff:127.0.0.1")!))
        #expect(lenient.permits(IPAddress("fd00::7")!))
        #expect(!lenient.permits(IPAddress("169.254.169.254")!) && !lenient.permits(IPAddress("::1")!))
        #expect(OutboundAddressPolicy.networks("10.0.0.0/8,nonsense").failure?.entry == "nonsense")
        #expect(try OutboundAddressPolicy.networks("").get().isEmpty)
    }
}

private extension Result {
    var failure: Failure? { if case .failure(let failure) = self { failure } else { nil } }
}

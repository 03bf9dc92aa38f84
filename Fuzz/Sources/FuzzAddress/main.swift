import FuzzSupport
import ParleyCore

/// The address parser behind the outbound policy (webhook URLs and push endpoints users set):
/// any string either is no address or parses to 4 or 16 bytes whose text form parses back to
/// the same bytes; a network contains its own address; the policy answers without crashing.
func fuzzAddress(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let text = String(decoding: FuzzSupport.bytes(data, count), as: UTF8.self)
    if let address = IPAddress(text) {
        guard address.bytes.count == 4 || address.bytes.count == 16 else { fatalError("\(address.bytes.count) bytes from \(text)") }
        guard IPAddress(address.description) == address else { fatalError("\(text) → \(address) does not parse back") }
        _ = OutboundAddressPolicy().permits(address)
        _ = address.embeddedIPv4
    }
    if let network = IPNetwork(text), !network.contains(network.address) {
        fatalError("\(network) does not contain its own address")
    }
    _ = OutboundAddressPolicy.networks(text)
    return 0
}

runFuzzer { data, count in fuzzAddress(data, count) }

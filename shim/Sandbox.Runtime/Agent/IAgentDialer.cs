namespace Sandbox.Runtime.Agent;

/// <summary>Opens one byte stream to the in-guest agent. Each call is a new connection.</summary>
public interface IAgentDialer
{
    /// <summary>Human-readable address for error messages, e.g. "hybrid vsock /run/.../vsock.sock port 1024".</summary>
    string Description { get; }

    Task<Stream> DialAsync(CancellationToken cancellationToken);

    /// <summary>True when the far end takes one connection at a time (a virtio-serial port): the channel then keeps
    /// every call on one HTTP/2 connection.</summary>
    bool SingleConnection => false;
}

namespace Sandbox.Ttrpc;

/// <summary>
/// The byte stream is not ttrpc (truncated header, unknown message type, absurd length). The connection that produced
/// it cannot be resynchronised and is closed; other connections are unaffected.
/// </summary>
public sealed class TtrpcProtocolException : Exception
{
    public TtrpcProtocolException(string message)
        : base(message)
    {
    }
}

namespace Sandbox.Ttrpc;

/// <summary>
/// An RPC failure with a status code. Handlers throw it to answer with that status; the client throws it when the
/// server answered with a non-OK status or when the call could not complete (closed connection, timeout).
/// </summary>
public sealed class TtrpcException : Exception
{
    public TtrpcException(TtrpcStatusCode code, string message)
        : base(message)
    {
        Code = code;
    }

    public TtrpcException(TtrpcStatusCode code, string message, Exception inner)
        : base(message, inner)
    {
        Code = code;
    }

    public TtrpcStatusCode Code { get; }

    public override string ToString() => $"ttrpc {Code} ({(int)Code}): {Message}";
}

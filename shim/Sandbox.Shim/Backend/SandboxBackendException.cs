using Sandbox.Ttrpc;

namespace Sandbox.Shim.Backend;

/// <summary>A backend failure with the status code containerd should see.</summary>
public sealed class SandboxBackendException : Exception
{
    public SandboxBackendException(TtrpcStatusCode code, string message)
        : base(message)
    {
        Code = code;
    }

    public SandboxBackendException(TtrpcStatusCode code, string message, Exception inner)
        : base(message, inner)
    {
        Code = code;
    }

    public TtrpcStatusCode Code { get; }
}

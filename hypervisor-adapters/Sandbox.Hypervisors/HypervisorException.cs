namespace Sandbox.Hypervisors;

/// <summary>A VM could not be prepared, started or stopped. The message names the sandbox, what failed and what to
/// check; for a VMM that exited it includes the VMM's stderr and the last console lines.</summary>
public sealed class HypervisorException : Exception
{
    public HypervisorException(string sandboxId, string message, Exception? inner = null)
        : base($"sandbox {sandboxId}: {message}", inner)
    {
        SandboxId = sandboxId;
    }

    public string SandboxId { get; }
}

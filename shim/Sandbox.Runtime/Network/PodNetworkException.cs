namespace Sandbox.Runtime.Network;

/// <summary>The pod network of a sandbox could not be inspected, set up or torn down. The message names the sandbox,
/// the network namespace, and for a failed command the command line and what it printed on stderr.</summary>
public sealed class PodNetworkException : Exception
{
    public PodNetworkException(string sandboxId, string networkNamespacePath, string message, Exception? inner = null)
        : base($"sandbox {sandboxId}: pod network in {networkNamespacePath}: {message}", inner)
    {
        SandboxId = sandboxId;
        NetworkNamespacePath = networkNamespacePath;
    }

    public string SandboxId { get; }
    public string NetworkNamespacePath { get; }
}

namespace Sandbox.Hypervisors;

/// <summary>
/// One virtual machine, driven through its VMM. The runtime is written against this interface only
/// (as Kata runtime-rs is against its Hypervisor trait); QemuAdapter is the first implementation.
/// Lifecycle: PrepareAsync once, StartAsync once, then StopAsync (idempotent) and DisposeAsync.
/// </summary>
public interface IHypervisor : IAsyncDisposable
{
    /// <summary>What this VMM can do on this host (acceleration and vsock flavour in use, features).</summary>
    HypervisorCapabilities Capabilities { get; }

    /// <summary>Validates the configuration, resolves acceleration and vsock mode, and creates the state files.
    /// Nothing runs yet.</summary>
    Task PrepareAsync(VmConfig config, CancellationToken cancellationToken);

    /// <summary>Starts the VMM (and its helper daemons). Returns once the VMM process runs; the guest boots on.</summary>
    Task StartAsync(CancellationToken cancellationToken);

    /// <summary>Stops the VMM and its helper daemons, and removes sockets and temporary files. Idempotent.</summary>
    Task StopAsync(CancellationToken cancellationToken);

    /// <summary>Completes when the VMM process exits, for whatever reason.</summary>
    Task<VmExit> WaitForExitAsync(CancellationToken cancellationToken);

    /// <summary>Host pid of the VMM process, or null before StartAsync.</summary>
    int? Pid { get; }

    /// <summary>Where the in-guest agent can be dialled (port 1024 by convention).</summary>
    AgentEndpoint AgentEndpoint { get; }

    /// <summary>File that receives the guest's serial console.</summary>
    string ConsoleLogPath { get; }
}

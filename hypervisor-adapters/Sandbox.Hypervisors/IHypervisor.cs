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

    /// <summary>Ends a VM the runtime has given up on (its guest stopped answering): kills the VMM at once. Unlike
    /// StopAsync, its exit is reported as unexpected, with <paramref name="reason"/> as the cause in
    /// <see cref="VmExit.Diagnostics"/>. Does nothing once the VMM has exited or a stop was asked for.</summary>
    void Abandon(string reason);

    /// <summary>Once the guest has booted: takes the VMM's copies of the kernel and initrd out of its resident memory.
    /// QEMU keeps both files mapped only to load them again on a guest reset, which a sandbox never does (and a reset
    /// would read them back from the files). Best effort: returns one line saying what was released or why nothing was.</summary>
    Task<string> ReleaseBootImagesAsync(CancellationToken cancellationToken);

    /// <summary>Only for a VM started as a <see cref="VmTemplateRole.Source"/>, once its agent is ready: pauses the guest,
    /// writes its device state to <paramref name="stateFile"/> (guest RAM stays in the memory file of the state
    /// directory, whose path it returns), and ends the VMM.</summary>
    Task<string> SaveAsTemplateAsync(string stateFile, CancellationToken cancellationToken);

    /// <summary>Completes when the VMM process exits, for whatever reason.</summary>
    Task<VmExit> WaitForExitAsync(CancellationToken cancellationToken);

    /// <summary>Host pid of the VMM process, or null before StartAsync.</summary>
    int? Pid { get; }

    /// <summary>Where the in-guest agent can be dialled (port 1024 by convention).</summary>
    AgentEndpoint AgentEndpoint { get; }

    /// <summary>File that receives the guest's serial console.</summary>
    string ConsoleLogPath { get; }
}

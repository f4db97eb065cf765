namespace Sandbox.Hypervisors;

/// <summary>
/// A VM's part in templating (Kata's "VM templating"): a source VM boots once and is saved; clones start from what
/// was saved instead of booting. Both run the same devices (a clone's command line is its source's, with its own
/// sockets, share and console), and the agent's channel is a virtio-serial port rather than vsock: QEMU will not
/// migrate vhost-user-vsock, and vhost-user needs guest memory that the daemon can map shared, where a clone's is
/// private. See hypervisor-adapters/README.md, "Templates".
/// </summary>
public abstract record VmTemplateRole
{
    private VmTemplateRole()
    {
    }

    /// <summary>Boots to be saved with <see cref="IHypervisor.SaveAsTemplateAsync"/>: guest RAM lives in a file of the
    /// state directory (<see cref="SourceMemoryFileName"/>), shared, so the save writes only the device state. It has
    /// <paramref name="NetworkCards"/> virtio-net cards without a backend, with the addresses
    /// <see cref="PlaceholderMac"/>: a clone puts its taps behind them and the agent gives them the pod's addresses.</summary>
    public sealed record Source(int NetworkCards = 0) : VmTemplateRole;

    /// <summary>Starts from a saved template: the device state is read from <paramref name="StateFile"/>, and guest RAM
    /// is mapped privately (copy-on-write) from <paramref name="MemoryDescriptor"/>, a descriptor this process holds
    /// and the VMM inherits: a sealed memfd with the template's memory, which every clone of the template shares until
    /// it writes a page.</summary>
    public sealed record CloneOf(string StateFile, int MemoryDescriptor) : VmTemplateRole
    {
        /// <summary>Completes once the memfd is filled and sealed: the VMM may start before, the restore waits for it.</summary>
        public Task MemoryReady { get; init; } = Task.CompletedTask;
    }

    /// <summary>The hardware address of a template's network card <paramref name="index"/> (locally administered).</summary>
    public static string PlaceholderMac(int index) => $"02:00:00:00:00:{index + 1:x2}";

    /// <summary>The name of a source VM's guest RAM file in its state directory.</summary>
    public const string SourceMemoryFileName = "template-memory";
}

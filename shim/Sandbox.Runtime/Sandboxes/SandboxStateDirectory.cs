namespace Sandbox.Runtime.Sandboxes;

/// <summary>
/// The one directory that holds everything about one sandbox: the VMM's files (console log, command lines, pid,
/// sockets), the shared directory exported to the guest, and sandbox.json. sandboxctl reads it; nothing about a
/// sandbox lives anywhere else.
/// </summary>
public sealed class SandboxStateDirectory
{
    /// <summary>Default parent of every sandbox's state directory.</summary>
    public const string DefaultRoot = "/run/sandbox/sandboxes";

    public SandboxStateDirectory(string root, string sandboxId)
    {
        if (string.IsNullOrWhiteSpace(sandboxId) || sandboxId.Contains('/') || sandboxId is "." or "..")
            throw new ArgumentException($"'{sandboxId}' is not a valid sandbox id (non-empty, no '/')", nameof(sandboxId));
        Root = root;
        SandboxId = sandboxId;
        Path = System.IO.Path.Combine(root, sandboxId);
    }

    /// <summary>The state root in effect: $SANDBOX_STATE_ROOT, else <see cref="DefaultRoot"/>.</summary>
    public static string ResolveRoot(string? configured = null) =>
        configured ?? Environment.GetEnvironmentVariable("SANDBOX_STATE_ROOT") ?? DefaultRoot;

    public string Root { get; }
    public string SandboxId { get; }
    public string Path { get; }

    /// <summary>Host directory exported to the guest over 9p (container root filesystems and volumes go below it).</summary>
    public string SharedDirectory => System.IO.Path.Combine(Path, "shared");

    /// <summary>What the sandbox is: id, VMM pid, agent endpoint, configuration used.</summary>
    public string MetadataFile => System.IO.Path.Combine(Path, "sandbox.json");

    /// <summary>The containers in the sandbox: the directories of its share, sorted; none when it is unreadable.</summary>
    public IReadOnlyList<string> ContainerIds()
    {
        try
        {
            return Directory.Exists(SharedDirectory)
                ? Directory.EnumerateDirectories(SharedDirectory).Select(System.IO.Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToArray()
                : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    public void Create()
    {
        Directory.CreateDirectory(Path);
        Directory.CreateDirectory(SharedDirectory);
    }

    /// <summary>Makes the share a mount point of its own with shared propagation (<see cref="SharedMountPoint"/>),
    /// before any container is bound there: a jailed QEMU runs in its own mount namespace, and only a shared mount
    /// carries the binds made later into it.</summary>
    public void MakeShareMountPoint() => SharedMountPoint.Make(SharedDirectory);

    /// <summary>Removes the directory, after detaching the share's own mount (<see cref="MakeShareMountPoint"/>). Refuses (with a
    /// message naming what is left) while something else is still mounted below it, so that a bind-mounted container
    /// rootfs is never deleted through the mount.</summary>
    public void Delete()
    {
        if (!Directory.Exists(Path))
            return;
        if (MountTable.MountPointsBelow(SharedDirectory).All(m => m == SharedDirectory))
            MountTable.DetachAll(SharedDirectory);
        var mounted = MountTable.MountPointsBelow(Path);
        if (mounted.Count > 0)
            throw new IOException(
                $"sandbox {SandboxId}: cannot remove state directory {Path}: still mounted below it: {string.Join(", ", mounted)}");
        // Out of sight in one step, then removed: containerd's `delete` (VmSandboxCleanup) tells a sandbox whose daemon
        // died from a live one by the owner file in this directory, and a recursive delete may remove that file before
        // the rest. A `delete` running meanwhile then took the half-removed directory for one whose daemon had died,
        // and recorded that over the daemon's own post-mortem record (seen once in CI on containerd 2.1:
        // SandboxctlDoctorTests, a killed QEMU). Names that start with "." are never listed as sandboxes.
        string removing = System.IO.Path.Combine(Root, $"{RemovingPrefix}{SandboxId}-{Environment.ProcessId}");
        try
        {
            Directory.Move(Path, removing);
        }
        catch (DirectoryNotFoundException)
        {
            return; // removed by another process meanwhile
        }
        Directory.Delete(removing, recursive: true);
    }

    /// <summary>Name prefix of a state directory being removed (<see cref="Delete"/>): ".removing-&lt;id&gt;-&lt;pid&gt;".</summary>
    public const string RemovingPrefix = ".removing-";

    /// <summary>State directories whose removal (<see cref="Delete"/>) was cut short: their remover, the pid at the end
    /// of the name, no longer runs. `sandboxctl gc` removes them.</summary>
    public static IReadOnlyList<string> AbandonedRemovals(string root)
    {
        if (!Directory.Exists(root))
            return [];
        return Directory.EnumerateDirectories(root, RemovingPrefix + "*")
            .Where(directory => RemoverOf(directory) is not { } pid || SandboxOwnerFile.StartTimeOf(pid) is null)
            .Order(StringComparer.Ordinal)
            .ToArray();
    }

    /// <summary>Finishes a removal that <see cref="AbandonedRemovals"/> found. Refuses, as <see cref="Delete"/> does, while
    /// something is still mounted below it, with a message naming the mounts.</summary>
    public static void RemoveAbandoned(string directory)
    {
        var mounted = MountTable.MountPointsBelow(directory);
        if (mounted.Count > 0)
            throw new IOException($"still mounted below it: {string.Join(", ", mounted)} (unmount them, then run gc again)");
        Directory.Delete(directory, recursive: true);
    }

    /// <summary>The pid at the end of a ".removing-&lt;id&gt;-&lt;pid&gt;" name, or null when it has none.</summary>
    private static int? RemoverOf(string directory)
    {
        string name = System.IO.Path.GetFileName(directory);
        return int.TryParse(name.AsSpan(name.LastIndexOf('-') + 1), out int pid) ? pid : null;
    }

    public static IEnumerable<SandboxStateDirectory> List(string root)
    {
        if (!Directory.Exists(root))
            yield break;
        // names that start with "." are the root's own (the post-mortem records), never a sandbox: containerd's ids
        // start with a letter or digit
        foreach (var dir in Directory.EnumerateDirectories(root).Where(d => !System.IO.Path.GetFileName(d).StartsWith('.')).Order(StringComparer.Ordinal))
            yield return new SandboxStateDirectory(root, System.IO.Path.GetFileName(dir));
    }
}

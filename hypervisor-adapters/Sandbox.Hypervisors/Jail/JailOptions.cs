namespace Sandbox.Hypervisors.Jail;

/// <summary>How a path is put into a jail's root, each at the same absolute path as on the host.</summary>
public enum JailMountKind
{
    /// <summary>Read-write, nosuid, nodev, noexec (the sandbox's state directory).</summary>
    ReadWrite,
    /// <summary>Read-write, nosuid, nodev, noexec, recursive, and a slave of the host's mount: container root
    /// filesystems and volumes bound there on the host later appear in the jail (the pod's 9p share).</summary>
    Share,
    /// <summary>Read-only, nosuid, nodev, noexec (guest kernel and initrd, firmware, the loader cache).</summary>
    ReadOnlyData,
    /// <summary>Read-only, nosuid, nodev; code may be mapped from it (the program and its shared libraries).</summary>
    ReadOnlyExecutable,
    /// <summary>One device node, nosuid, noexec.</summary>
    Device,
}

public sealed record JailMount(JailMountKind Kind, string Path);

/// <summary>A symbolic link made in the jail's root, such as /lib64 -> usr/lib64 on a merged-/usr host.</summary>
public sealed record JailSymlink(string Path, string Target);

/// <summary>A tap device the jailer opens (it may, before it drops its capabilities) and leaves open at
/// <paramref name="Descriptor"/> for the program (QEMU's <c>-netdev tap,fd=N</c>).</summary>
public sealed record JailTap(string Name, int Descriptor);

/// <summary>
/// What sandbox-jailer does before it execs a VMM or a helper (Firecracker's jailer, for QEMU): enter a network
/// namespace; make a mount namespace whose root is an empty tmpfs holding only <see cref="Mounts"/> and
/// <see cref="Symlinks"/>; open <see cref="Taps"/>; set <see cref="Limits"/>; keep only <see cref="KeptCapabilities"/>
/// (bounding, permitted and effective sets; the uid stays 0); install the seccomp filter of
/// <see cref="SeccompDenyFilter"/>; exec. The same record is written as the jailer's arguments
/// (<see cref="ToArguments"/>) and read back by it (<see cref="Parse"/>).
/// </summary>
public sealed record JailOptions
{
    /// <summary>An empty host directory the jail's tmpfs root is mounted on (in the jail's own mount namespace only).</summary>
    public required string RootDirectory { get; init; }
    public required string Program { get; init; }
    public IReadOnlyList<string> Arguments { get; init; } = [];
    public string? NetworkNamespacePath { get; init; }
    public IReadOnlyList<JailMount> Mounts { get; init; } = [];
    public IReadOnlyList<JailSymlink> Symlinks { get; init; } = [];
    public IReadOnlyList<JailTap> Taps { get; init; } = [];
    public IReadOnlyList<string> KeptCapabilities { get; init; } = [];
    /// <summary>rlimit name (core, nofile, msgqueue) and value; both the soft and the hard limit.</summary>
    public IReadOnlyDictionary<string, ulong> Limits { get; init; } = new Dictionary<string, ulong>();
    /// <summary>The filter also refuses every socket family but AF_UNIX (vhost-device-vsock needs no other).</summary>
    public bool UnixSocketsOnly { get; init; }
    /// <summary>The process's own /proc/PID is bound read-only at /proc/self, and nothing else of /proc: QEMU's 9p
    /// server reaches files through /proc/self/fd/N/NAME (its *xattrat calls), and no other process is visible.</summary>
    public bool ProcSelf { get; init; }
    /// <summary>The filter refuses the setuid and setgid mode bits (see <see cref="SeccompDenyFilter"/>).</summary>
    public bool RefuseSetIdModes { get; init; }

    /// <summary>The rlimits the jailer knows, by the name used in its arguments.</summary>
    public static readonly IReadOnlyDictionary<string, int> LimitResources = new Dictionary<string, int>
    {
        ["core"] = 4,
        ["nofile"] = 7,
        ["msgqueue"] = 12,
    };

    private static readonly Dictionary<string, JailMountKind> MountOptions = new()
    {
        ["--bind-rw"] = JailMountKind.ReadWrite,
        ["--bind-share"] = JailMountKind.Share,
        ["--bind-ro"] = JailMountKind.ReadOnlyData,
        ["--bind-exec"] = JailMountKind.ReadOnlyExecutable,
        ["--device"] = JailMountKind.Device,
    };

    public IReadOnlyList<string> ToArguments()
    {
        var args = new List<string> { "--root", RootDirectory };
        if (NetworkNamespacePath is not null)
            args.AddRange(["--netns", NetworkNamespacePath]);
        foreach (var mount in Mounts)
            args.AddRange([MountOptions.First(o => o.Value == mount.Kind).Key, mount.Path]);
        foreach (var link in Symlinks)
            args.AddRange(["--symlink", $"{link.Path}={link.Target}"]);
        foreach (var tap in Taps)
            args.AddRange(["--tap", $"{tap.Name}={tap.Descriptor}"]);
        foreach (var cap in KeptCapabilities)
            args.AddRange(["--keep-cap", cap]);
        foreach (var (name, value) in Limits)
            args.AddRange(["--rlimit", $"{name}={value}"]);
        if (UnixSocketsOnly)
            args.Add("--unix-sockets-only");
        if (ProcSelf)
            args.Add("--proc-self");
        if (RefuseSetIdModes)
            args.Add("--refuse-setid-modes");
        args.Add("--");
        args.Add(Program);
        args.AddRange(Arguments);
        return args;
    }

    /// <summary>Reads the jailer's arguments. Throws <see cref="ArgumentException"/> saying which one is wrong.</summary>
    public static JailOptions Parse(IReadOnlyList<string> args)
    {
        string? root = null, netns = null;
        var mounts = new List<JailMount>();
        var links = new List<JailSymlink>();
        var taps = new List<JailTap>();
        var caps = new List<string>();
        var limits = new Dictionary<string, ulong>();
        bool unixOnly = false, procSelf = false, refuseSetId = false;
        int i = 0;
        string Value(string option)
        {
            if (i + 1 >= args.Count)
                throw new ArgumentException($"{option} needs a value");
            return args[++i];
        }
        static void RequireAbsolute(string option, string path)
        {
            if (!path.StartsWith('/') || path.Split('/').Contains(".."))
                throw new ArgumentException($"{option} {path}: the path must be absolute, without '..'");
        }
        for (; i < args.Count; i++)
        {
            string option = args[i];
            if (option == "--")
            {
                i++;
                break;
            }
            switch (option)
            {
                case "--root":
                    root = Value(option);
                    RequireAbsolute(option, root);
                    break;
                case "--netns":
                    netns = Value(option);
                    RequireAbsolute(option, netns);
                    break;
                case "--symlink":
                {
                    var (path, target) = Pair(option, Value(option));
                    RequireAbsolute(option, path);
                    links.Add(new JailSymlink(path, target));
                    break;
                }
                case "--tap":
                {
                    var (name, fd) = Pair(option, Value(option));
                    if (!int.TryParse(fd, out int descriptor) || descriptor < 3)
                        throw new ArgumentException($"--tap {name}={fd}: the descriptor must be a number of at least 3");
                    taps.Add(new JailTap(name, descriptor));
                    break;
                }
                case "--keep-cap":
                {
                    string cap = Value(option);
                    if (LinuxCapability.NumberOf(cap) is null)
                        throw new ArgumentException($"--keep-cap {cap}: unknown capability (known: {string.Join(", ", LinuxCapability.Names)})");
                    caps.Add(cap);
                    break;
                }
                case "--rlimit":
                {
                    var (name, text) = Pair(option, Value(option));
                    if (!LimitResources.ContainsKey(name))
                        throw new ArgumentException($"--rlimit {name}: unknown limit (known: {string.Join(", ", LimitResources.Keys)})");
                    if (!ulong.TryParse(text, out ulong value))
                        throw new ArgumentException($"--rlimit {name}={text}: the value must be a number");
                    limits[name] = value;
                    break;
                }
                case "--unix-sockets-only":
                    unixOnly = true;
                    break;
                case "--proc-self":
                    procSelf = true;
                    break;
                case "--refuse-setid-modes":
                    refuseSetId = true;
                    break;
                default:
                    if (!MountOptions.TryGetValue(option, out var kind))
                        throw new ArgumentException($"unknown option {option}");
                    string mountPath = Value(option);
                    RequireAbsolute(option, mountPath);
                    mounts.Add(new JailMount(kind, mountPath));
                    break;
            }
        }
        if (root is null)
            throw new ArgumentException("--root is required");
        if (i >= args.Count)
            throw new ArgumentException("no program given after --");
        RequireAbsolute("the program", args[i]);
        return new JailOptions
        {
            RootDirectory = root,
            Program = args[i],
            Arguments = args.Skip(i + 1).ToArray(),
            NetworkNamespacePath = netns,
            Mounts = mounts,
            Symlinks = links,
            Taps = taps,
            KeptCapabilities = caps,
            Limits = limits,
            UnixSocketsOnly = unixOnly,
            ProcSelf = procSelf,
            RefuseSetIdModes = refuseSetId,
        };
    }

    private static (string, string) Pair(string option, string value)
    {
        int eq = value.IndexOf('=');
        if (eq <= 0 || eq == value.Length - 1)
            throw new ArgumentException($"{option} {value}: expected NAME=VALUE");
        return (value[..eq], value[(eq + 1)..]);
    }
}

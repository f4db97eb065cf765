using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json.Nodes;
using System.Text.Json;
using Sandbox.Native;
using Sandbox.Runtime.Sandboxes;
using Sandbox.Shim.Backend;
using Sandbox.Shim.Rootfs;
using Sandbox.Ttrpc;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Sandbox.Shim.Vm;

/// <summary>
/// Makes a container's bind mounts work in its sandbox VM, where host paths mean nothing: CRI's /etc/hosts,
/// /etc/hostname and /etc/resolv.conf, and volumes (hostPath and emptyDir directories, ConfigMap/Secret-like files),
/// or `ctr run --mount type=bind,...`.
/// - A bind mount ("type": "bind", or a "bind"/"rbind" option) of an absolute host path: the source (file or
///   directory) is bind-mounted at <c>&lt;state&gt;/shared/&lt;container id&gt;/mounts/&lt;index in spec.mounts&gt;</c>
///   (MS_REC for rbind; read-only on the host too when the mount has "ro", keeping the source's nosuid/nodev/noexec),
///   and the spec sent to the agent names that place in the guest's 9p share instead. Options stay, so crun in the
///   guest makes "ro" read-only there; writes to a read-write one reach the host file or directory (9p passes them on).
///   Except a non-recursive read-only bind with mounts below it: see <see cref="HasWritableSubmountsToKeep"/>.
/// - /dev/shm bound from the host (CRI binds the pod's host tmpfs there): the guest gets a tmpfs of its own instead,
///   as Kata does (nosuid,noexec,nodev,mode=1777,size=64 MiB); a host tmpfs is not shared with a VM.
/// - Every other mount (proc, tmpfs, devpts, sysfs, cgroup, relative sources, unknown types) passes unchanged: the
///   guest kernel decides.
/// <see cref="Unshare"/> detaches the binds (MNT_DETACH); <see cref="RootfsShare.Remove"/> calls it, so a container's
/// Delete and the `delete` subcommand's cleanup both release them.
/// </summary>
internal static class ContainerMountShare
{
    public const string ShmDestination = "/dev/shm";

    /// <summary>Options of the guest's own /dev/shm (Kata's default when the pod asks for no shm size).</summary>
    public static readonly IReadOnlyList<string> GuestShmOptions = ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"];

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public enum MountKind
    {
        /// <summary>Left as it is.</summary>
        PassThrough,
        /// <summary>A host file or directory: shared into the VM.</summary>
        HostBind,
        /// <summary>/dev/shm from the host: replaced by a guest tmpfs.</summary>
        HostShm,
    }

    /// <summary>&lt;container directory&gt;/mounts: the binds' mount points.</summary>
    public static string MountsDirectory(string containerDirectory) => Path.Combine(containerDirectory, "mounts");

    /// <summary>
    /// Shares the bind mounts of <paramref name="specJson"/> (a container's config.json) into
    /// <paramref name="containerDirectory"/> and returns the spec for the guest, with sources rewritten through
    /// <paramref name="guestPathOf"/>. Unchanged text when there is nothing to rewrite. On failure the binds made so far
    /// are detached and a <see cref="SandboxBackendException"/> names the mount.
    /// </summary>
    public static string Share(string specJson, string containerDirectory, Func<string, string> guestPathOf, string owner)
    {
        var spec = ParseSpec(specJson, owner);
        if (spec["mounts"] is not JsonArray mounts)
            return specJson;

        bool changed = false;
        try
        {
            for (int i = 0; i < mounts.Count; i++)
            {
                if (mounts[i] is not JsonObject mount)
                    continue;
                switch (Classify(mount))
                {
                    case MountKind.HostShm:
                        mounts[i] = GuestShm(mount);
                        changed = true;
                        break;
                    case MountKind.HostBind:
                        string target = Path.Combine(MountsDirectory(containerDirectory), i.ToString(CultureInfo.InvariantCulture));
                        var options = OptionsOf(mount);
                        Bind(SourceOf(mount)!, target, recursive: options.Contains("rbind"), readOnly: options.Contains("ro"),
                            $"{owner}: its mount at {DestinationOf(mount)}");
                        mount["source"] = guestPathOf(target);
                        if (HasWritableSubmountsToKeep(options, target))
                            mount["options"] = Without(mount, "ro");
                        changed = true;
                        break;
                }
            }
        }
        catch
        {
            try
            {
                Unshare(containerDirectory);
            }
            catch (IOException)
            {
                // the original error is the one to report; RootfsShare.Remove refuses to delete through a mount
            }
            throw;
        }
        return changed ? Serialize(spec) : specJson;
    }

    /// <summary>
    /// config.json as a mutable tree. A duplicate property is refused here: JsonNode checks for it only when the object
    /// is first read, where it threw a bare ArgumentException (issue 15's config.json fuzz).
    /// </summary>
    public static JsonObject ParseSpec(string specJson, string owner)
    {
        try
        {
            return JsonNode.Parse(specJson, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }) as JsonObject
                   ?? throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument, $"{owner}: config.json is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument, $"{owner}: config.json is not valid JSON: {e.Message}");
        }
    }

    /// <summary>Detaches every bind below &lt;container directory&gt;/mounts. Idempotent.</summary>
    public static void Unshare(string containerDirectory)
    {
        string mountsDirectory = MountsDirectory(containerDirectory);
        if (!Directory.Exists(mountsDirectory))
            return;
        foreach (var mountPoint in MountTable.MountPointsBelow(mountsDirectory).OrderByDescending(m => m.Length))
            MountTable.DetachAll(mountPoint);
    }

    /// <summary>What <see cref="Share"/> does with one entry of spec.mounts.</summary>
    public static MountKind Classify(JsonObject mount)
    {
        var options = OptionsOf(mount);
        bool bind = TypeOf(mount) == "bind" || options.Contains("bind") || options.Contains("rbind");
        if (!bind || SourceOf(mount) is not { } source || !Path.IsPathFullyQualified(source))
            return MountKind.PassThrough;
        return DestinationOf(mount)?.TrimEnd('/') == ShmDestination ? MountKind.HostShm : MountKind.HostBind;
    }

    /// <summary>
    /// A non-recursive read-only bind ("rbind" + "ro", without "rro") of a source with mounts below it: on the host
    /// only the top mount is read-only and the submounts keep their own flags, as runc makes it. The guest sees the
    /// whole tree as one 9p mount, where "ro" would make the submounts read-only too; so the guest mount stays
    /// read-write and the host's read-only top mount refuses writes there (EROFS through 9p).
    /// </summary>
    private static bool HasWritableSubmountsToKeep(HashSet<string> options, string target) =>
        options.Contains("rbind") && options.Contains("ro") && !options.Contains("rro")
        && MountTable.MountPointsBelow(target).Any(mountPoint => mountPoint != Path.TrimEndingDirectorySeparator(target));

    private static JsonArray Without(JsonObject mount, string option)
    {
        var kept = new JsonArray();
        if (mount["options"] is JsonArray array)
        {
            foreach (var item in array)
            {
                if (!(item is JsonValue value && value.TryGetValue(out string? text) && text == option))
                    kept.Add(item?.DeepClone());
            }
        }
        return kept;
    }

    /// <summary>The guest's own /dev/shm in place of <paramref name="hostShm"/> (read-only if that was).</summary>
    public static JsonObject GuestShm(JsonObject hostShm)
    {
        var options = new JsonArray();
        foreach (var option in GuestShmOptions)
            options.Add((JsonNode)option);
        if (OptionsOf(hostShm).Contains("ro"))
            options.Add((JsonNode)"ro");
        return new JsonObject
        {
            ["destination"] = ShmDestination,
            ["type"] = "tmpfs",
            ["source"] = "shm",
            ["options"] = options,
        };
    }

    private static void Bind(string source, string target, bool recursive, bool readOnly, string what)
    {
        bool isDirectory = Directory.Exists(source);
        if (!isDirectory && !File.Exists(source))
        {
            throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument,
                $"{what}: its source {source} does not exist on the host");
        }
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            if (isDirectory)
                Directory.CreateDirectory(target);
            else
                File.Create(target).Dispose();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SandboxBackendException(TtrpcStatusCode.Unknown, $"{what}: cannot make its mount point {target} in the sandbox share: {e.Message}");
        }

        ulong flags = MS_BIND | (recursive ? MS_REC : 0);
        if (LibCStrings.mount(source, target, null, flags, null) != 0)
        {
            int errno = Errno.Last;
            throw new SandboxBackendException(TtrpcStatusCode.Unknown,
                $"{what}: cannot bind-mount {source} into the sandbox share at {target}: {Errno.Describe(errno)}");
        }
        if (readOnly && LibCStrings.mount("", target, null, MS_REMOUNT | MS_BIND | MS_RDONLY | KeptFlagsOf(target), null) != 0)
        {
            int errno = Errno.Last;
            MountTable.DetachAll(target);
            throw new SandboxBackendException(TtrpcStatusCode.Unknown,
                $"{what}: cannot make its bind of {source} at {target} read-only: {Errno.Describe(errno)}");
        }
    }

    /// <summary>The mount flags a bind remount must repeat so as not to clear them (nosuid, nodev, noexec, atime).</summary>
    private static unsafe ulong KeptFlagsOf(string path)
    {
        statvfs stat;
        if (LibCStrings.statvfs(path, &stat) != 0)
            return 0;
        ulong mounted = stat.f_flag;
        ulong flags = 0;
        if ((mounted & (ulong)ST_NOSUID) != 0) flags |= MS_NOSUID;
        if ((mounted & (ulong)ST_NODEV) != 0) flags |= MS_NODEV;
        if ((mounted & (ulong)ST_NOEXEC) != 0) flags |= MS_NOEXEC;
        if ((mounted & (ulong)ST_NOATIME) != 0) flags |= MS_NOATIME;
        if ((mounted & (ulong)ST_NODIRATIME) != 0) flags |= MS_NODIRATIME;
        if ((mounted & (ulong)ST_RELATIME) != 0) flags |= MS_RELATIME;
        return flags;
    }

    private static string? TypeOf(JsonObject mount) => StringOf(mount, "type");

    private static string? SourceOf(JsonObject mount) => StringOf(mount, "source");

    private static string? DestinationOf(JsonObject mount) => StringOf(mount, "destination");

    private static string? StringOf(JsonObject mount, string key) =>
        mount[key] is JsonValue value && value.TryGetValue(out string? text) ? text : null;

    private static HashSet<string> OptionsOf(JsonObject mount)
    {
        var options = new HashSet<string>(StringComparer.Ordinal);
        if (mount["options"] is JsonArray array)
        {
            foreach (var option in array)
            {
                if (option is JsonValue value && value.TryGetValue(out string? text))
                    options.Add(text);
            }
        }
        return options;
    }

    private static string Serialize(JsonObject spec)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
            spec.WriteTo(writer);
        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }
}

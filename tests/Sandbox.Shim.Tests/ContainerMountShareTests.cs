using System.Text.Json.Nodes;
using Sandbox.Runtime.Sandboxes;
using Sandbox.Shim.Backend;
using Sandbox.Shim.Tests.Containerd;
using Sandbox.Shim.Vm;
using Sandbox.Ttrpc;

namespace Sandbox.Shim.Tests;

/// <summary>
/// The VM backend's translation of a container's bind mounts into the sandbox share, on real mounts (root needed):
/// what the guest is told, what is mounted on the host, that read-only stays read-only on the host as well, that
/// read-write writes reach the host, and that removing the container detaches everything without touching the sources.
/// </summary>
public sealed class ContainerMountShareTests : IAsyncLifetime
{
    private const string GuestShare = "/run/sandbox/shared";

    private readonly string _dir = Directory.CreateTempSubdirectory("cms-").FullName;

    private string Share => Path.Combine(_dir, "shared");

    private string ContainerDirectory => RootfsShare.ContainerDirectory(Share, "c1");

    private string HostFiles => Path.Combine(_dir, "host");

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(Path.Combine(HostFiles, "volume"));
        File.WriteAllText(Path.Combine(HostFiles, "volume", "existing.txt"), "existing\n");
        File.WriteAllText(Path.Combine(HostFiles, "hosts"), "127.0.0.1 localhost\n");
        File.WriteAllText(Path.Combine(HostFiles, "settings.txt"), "setting=1\n");
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var mountPoint in MountTable.MountPointsBelow(_dir).OrderByDescending(m => m.Length))
            await ExternalCommand.RunAsync("umount", new[] { "-l", mountPoint }, TimeSpan.FromSeconds(30));
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void Binds_are_shared_and_rewritten_shm_becomes_a_guest_tmpfs_and_other_mounts_pass_unchanged()
    {
        string spec = Spec(
            Mount("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
            Mount("/dev/shm", "bind", "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/p1/shm", "rbind", "ro"),
            Mount("/etc/hosts", "bind", Path.Combine(HostFiles, "hosts"), "rbind", "rprivate", "rw"),
            Mount("/data", "bind", Path.Combine(HostFiles, "volume"), "rbind", "rprivate", "rw"),
            Mount("/etc/app/settings.txt", null, Path.Combine(HostFiles, "settings.txt"), "rbind", "rprivate", "ro"),
            Mount("/relative", "bind", "relative/path", "rbind"),
            Mount("/run", "tmpfs", "tmpfs", "nosuid"));

        var guest = JsonNode.Parse(ContainerMountShare.Share(spec, ContainerDirectory, GuestPathOf, "container c1"))!.AsObject();
        var mounts = guest["mounts"]!.AsArray().Select(m => m!.AsObject()).ToArray();

        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(spec)!["mounts"]![0], mounts[0]));
        Assert.Equal("""{"destination":"/dev/shm","type":"tmpfs","source":"shm","options":["nosuid","noexec","nodev","mode=1777","size=65536k","ro"]}""",
            mounts[1].ToJsonString());
        Assert.Equal($"{GuestShare}/c1/mounts/2", (string?)mounts[2]["source"]);
        Assert.Equal($"{GuestShare}/c1/mounts/3", (string?)mounts[3]["source"]);
        Assert.Equal($"{GuestShare}/c1/mounts/4", (string?)mounts[4]["source"]);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(spec)!["mounts"]![4]!["options"], mounts[4]["options"])); // "ro" stays for crun
        Assert.Equal("relative/path", (string?)mounts[5]["source"]);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(spec)!["mounts"]![6], mounts[6]));
        // everything else of the spec is what containerd wrote
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(spec)!["process"], guest["process"]));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(spec)!["annotations"], guest["annotations"]));

        string mountsDirectory = ContainerMountShare.MountsDirectory(ContainerDirectory);
        Assert.Equal(new[] { "2", "3", "4" }, MountTable.MountPointsBelow(mountsDirectory).Select(Path.GetFileName).Order().ToArray());
        Assert.Equal("127.0.0.1 localhost\n", File.ReadAllText(Path.Combine(mountsDirectory, "2")));
        Assert.Equal("existing\n", File.ReadAllText(Path.Combine(mountsDirectory, "3", "existing.txt")));
    }

    [Fact]
    public void A_read_write_bind_passes_writes_to_the_host_and_a_read_only_one_refuses_them_on_the_host_too()
    {
        string spec = Spec(
            Mount("/data", "bind", Path.Combine(HostFiles, "volume"), "rbind", "rw"),
            Mount("/etc/app/settings.txt", "bind", Path.Combine(HostFiles, "settings.txt"), "rbind", "ro"));

        ContainerMountShare.Share(spec, ContainerDirectory, GuestPathOf, "container c1");

        string mountsDirectory = ContainerMountShare.MountsDirectory(ContainerDirectory);
        File.WriteAllText(Path.Combine(mountsDirectory, "0", "from-guest.txt"), "written\n");
        Assert.Equal("written\n", File.ReadAllText(Path.Combine(HostFiles, "volume", "from-guest.txt")));
        var refused = Assert.ThrowsAny<IOException>(() => File.WriteAllText(Path.Combine(mountsDirectory, "1"), "changed\n"));
        Assert.Contains("Read-only", refused.Message);
        Assert.Equal("setting=1\n", File.ReadAllText(Path.Combine(HostFiles, "settings.txt")));
    }

    /// <summary>
    /// runc's non-recursive "ro" (critest "should support non-recursive readonly mounts"): the volume is read-only, a
    /// tmpfs mounted below it stays writable. The guest sees one 9p mount, so the host's read-only top mount does the
    /// refusing and the guest mount is left read-write; a volume without submounts keeps "ro" in the guest as well.
    /// </summary>
    [Fact]
    public async Task A_non_recursive_read_only_bind_keeps_the_mounts_below_it_writable()
    {
        string volume = Path.Combine(HostFiles, "volume");
        string tmpfs = Directory.CreateDirectory(Path.Combine(volume, "tmpfs")).FullName;
        var mounted = await ExternalCommand.RunAsync("mount", ["-t", "tmpfs", "none", tmpfs], TimeSpan.FromSeconds(30));
        Assert.True(mounted.ExitCode == 0, mounted.ToString());
        try
        {
            string spec = Spec(
                Mount("/mnt", "bind", volume, "rbind", "rprivate", "ro"),
                Mount("/etc/app/settings.txt", "bind", Path.Combine(HostFiles, "settings.txt"), "rbind", "rprivate", "ro"));

            var guest = JsonNode.Parse(ContainerMountShare.Share(spec, ContainerDirectory, GuestPathOf, "container c1"))!.AsObject();

            var options = guest["mounts"]!.AsArray().Select(m => m!["options"]!.AsArray().Select(o => (string)o!).ToArray()).ToArray();
            Assert.Equal(["rbind", "rprivate"], options[0]);       // the host's read-only top mount refuses writes
            Assert.Equal(["rbind", "rprivate", "ro"], options[1]); // nothing below it: "ro" in the guest too
            string shared = Path.Combine(ContainerMountShare.MountsDirectory(ContainerDirectory), "0");
            File.WriteAllText(Path.Combine(shared, "tmpfs", "file"), "writable\n");
            var refused = Assert.ThrowsAny<IOException>(() => File.WriteAllText(Path.Combine(shared, "top.txt"), "x\n"));
            Assert.Contains("Read-only", refused.Message);
        }
        finally
        {
            ContainerMountShare.Unshare(ContainerDirectory);
            await ExternalCommand.RunAsync("umount", ["-l", tmpfs], TimeSpan.FromSeconds(30));
        }
    }

    [Fact]
    public void Removing_the_container_detaches_every_bind_and_leaves_the_host_sources_intact()
    {
        string spec = Spec(
            Mount("/data", "bind", Path.Combine(HostFiles, "volume"), "rbind"),
            Mount("/etc/hosts", "bind", Path.Combine(HostFiles, "hosts"), "bind", "ro"));
        RootfsShare.Bind(Path.Combine(HostFiles, "volume"), ContainerDirectory, "container c1"); // stands in for the rootfs
        ContainerMountShare.Share(spec, ContainerDirectory, GuestPathOf, "container c1");
        Assert.Equal(3, MountTable.MountPointsBelow(ContainerDirectory).Count);

        RootfsShare.Remove(ContainerDirectory);
        RootfsShare.Remove(ContainerDirectory); // idempotent

        Assert.False(Directory.Exists(ContainerDirectory));
        Assert.Empty(MountTable.MountPointsBelow(_dir));
        Assert.Equal("existing\n", File.ReadAllText(Path.Combine(HostFiles, "volume", "existing.txt")));
        Assert.Equal("127.0.0.1 localhost\n", File.ReadAllText(Path.Combine(HostFiles, "hosts")));
    }

    [Fact]
    public void A_missing_source_fails_naming_the_mount_and_detaches_the_binds_made_before_it()
    {
        string missing = Path.Combine(HostFiles, "no-such-volume");
        string spec = Spec(
            Mount("/data", "bind", Path.Combine(HostFiles, "volume"), "rbind"),
            Mount("/missing", "bind", missing, "rbind"));

        var error = Assert.Throws<SandboxBackendException>(() => ContainerMountShare.Share(spec, ContainerDirectory, GuestPathOf, "container c1"));

        Assert.Equal(TtrpcStatusCode.InvalidArgument, error.Code);
        Assert.Contains("container c1", error.Message);
        Assert.Contains("/missing", error.Message);
        Assert.Contains(missing, error.Message);
        Assert.Empty(MountTable.MountPointsBelow(_dir));
    }

    [Fact]
    public void A_spec_without_binds_is_passed_as_it_is()
    {
        string spec = Spec(Mount("/proc", "proc", "proc"), Mount("/dev/shm", "tmpfs", "shm", "nosuid"));

        Assert.Same(spec, ContainerMountShare.Share(spec, ContainerDirectory, GuestPathOf, "container c1"));
        Assert.False(Directory.Exists(ContainerMountShare.MountsDirectory(ContainerDirectory)));
    }

    [Theory]
    [InlineData("""{"destination":"/v","type":"bind","source":"/host/v"}""", "HostBind")]
    [InlineData("""{"destination":"/v","source":"/host/v","options":["rbind","ro"]}""", "HostBind")]
    [InlineData("""{"destination":"/v","type":"none","source":"/host/v","options":["bind"]}""", "HostBind")]
    [InlineData("""{"destination":"/dev/shm/","type":"bind","source":"/run/shm"}""", "HostShm")]
    [InlineData("""{"destination":"/dev/shm","type":"tmpfs","source":"shm"}""", "PassThrough")]
    [InlineData("""{"destination":"/v","type":"bind","source":"relative"}""", "PassThrough")]
    [InlineData("""{"destination":"/v","type":"bind"}""", "PassThrough")]
    [InlineData("""{"destination":"/v","type":"virtiofs","source":"/host/v"}""", "PassThrough")]
    public void Classify(string mount, string expected) =>
        Assert.Equal(expected, ContainerMountShare.Classify(JsonNode.Parse(mount)!.AsObject()).ToString());

    private string GuestPathOf(string hostPath) =>
        GuestShare + "/" + Path.GetRelativePath(Share, hostPath);

    private static JsonObject Mount(string destination, string? type, string source, params string[] options)
    {
        var mount = new JsonObject { ["destination"] = destination };
        if (type is not null)
            mount["type"] = type;
        mount["source"] = source;
        if (options.Length > 0)
            mount["options"] = new JsonArray(options.Select(o => (JsonNode)o).ToArray());
        return mount;
    }

    private static string Spec(params JsonObject[] mounts) => new JsonObject
    {
        ["ociVersion"] = "1.0.2-dev",
        ["process"] = new JsonObject { ["args"] = new JsonArray("sh", "-c", "echo '<a & b>' é"), ["cwd"] = "/" },
        ["mounts"] = new JsonArray(mounts.Cast<JsonNode>().ToArray()),
        ["annotations"] = new JsonObject { ["io.kubernetes.cri.container-type"] = "container", ["io.kubernetes.cri.sandbox-id"] = "p1" },
    }.ToJsonString();
}

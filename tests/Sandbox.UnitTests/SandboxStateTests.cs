using Sandbox.Runtime.Sandboxes;

namespace Sandbox.UnitTests;

public sealed class SandboxStateTests
{
    [Theory]
    [InlineData("")]
    [InlineData("a/b")]
    [InlineData("..")]
    public void Invalid_sandbox_ids_are_refused(string id)
    {
        Assert.Throws<ArgumentException>(() => new SandboxStateDirectory("/tmp/x", id));
    }

    [Fact]
    public void Mountinfo_mount_points_decode_octal_escapes()
    {
        const string line = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue";
        Assert.Equal("/mnt/with space", MountTable.ParseMountPoint(line));
    }

    [Fact]
    public void Delete_removes_the_directory_whole_and_leaves_nothing_beside_it()
    {
        string root = Path.Combine(Path.GetTempPath(), $"state-root-{Guid.NewGuid():N}");
        try
        {
            var state = new SandboxStateDirectory(root, "pod1");
            state.Create();
            File.WriteAllText(Path.Combine(state.Path, "shim.pid"), "1 2\n");
            Directory.CreateDirectory(Path.Combine(state.SharedDirectory, "c1", "rootfs"));
            File.WriteAllText(Path.Combine(state.SharedDirectory, "c1", "rootfs", "f"), "x");

            state.Delete();

            Assert.False(Directory.Exists(state.Path));
            Assert.Empty(Directory.EnumerateFileSystemEntries(root)); // no ".removing-..." directory left
            state.Delete(); // already gone: nothing to do
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void Metadata_round_trips_through_sandbox_json()
    {
        var path = Path.Combine(Path.GetTempPath(), $"sandbox-{Guid.NewGuid():N}.json");
        try
        {
            var written = new SandboxMetadata
            {
                SandboxId = "pod1", CreatedAt = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000), VmmPid = 42,
                Hypervisor = "qemu", Acceleration = "tcg", VsockMode = "hybrid", AgentEndpoint = "hybrid vsock /x port 1024",
                ConsoleLog = "/x/console.log", KernelPath = "/k", InitrdPath = "/i", Vcpus = 1, MemoryMiB = 256,
            };
            written.Write(path);
            Assert.Equal(written, SandboxMetadata.TryRead(path));
            File.WriteAllText(path, "{ garbage");
            Assert.Null(SandboxMetadata.TryRead(path));
        }
        finally
        {
            File.Delete(path);
        }
    }
}

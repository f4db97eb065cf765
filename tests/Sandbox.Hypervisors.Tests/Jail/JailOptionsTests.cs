using Sandbox.Hypervisors.Jail;

namespace Sandbox.Hypervisors.Tests.Jail;

public class JailOptionsTests
{
    private static readonly JailOptions Everything = new()
    {
        RootDirectory = "/run/sb/p/jail",
        Program = "/usr/bin/qemu-system-x86_64",
        Arguments = ["-name", "sandbox-p", "--", "-x"],
        NetworkNamespacePath = "/var/run/netns/cni-1",
        Mounts =
        [
            new(JailMountKind.ReadWrite, "/run/sb/p"), new(JailMountKind.Share, "/run/sb/p/shared"),
            new(JailMountKind.ReadOnlyData, "/img/vmlinux"), new(JailMountKind.ReadOnlyExecutable, "/usr/lib"),
            new(JailMountKind.Device, "/dev/kvm"),
        ],
        Symlinks = [new("/lib64", "usr/lib64")],
        Taps = [new("tap0_kata", 100)],
        KeptCapabilities = ["chown", "fowner"],
        Limits = new Dictionary<string, ulong> { ["core"] = 0, ["nofile"] = 65536 },
        UnixSocketsOnly = true,
        ProcSelf = true,
        RefuseSetIdModes = true,
    };

    [Fact]
    public void Arguments_read_back_as_the_same_options()
    {
        var parsed = JailOptions.Parse(Everything.ToArguments());
        Assert.Equal(Everything.ToArguments(), parsed.ToArguments());
        Assert.Equal(["-name", "sandbox-p", "--", "-x"], parsed.Arguments);
        Assert.Equal(Everything.Mounts, parsed.Mounts);
        Assert.True(parsed.RefuseSetIdModes && parsed.ProcSelf && parsed.UnixSocketsOnly);
    }

    [Theory]
    [InlineData("unknown option --bogus", "--root", "/j", "--bogus", "--", "/bin/x")]
    [InlineData("--root is required", "--", "/bin/x")]
    [InlineData("no program given after --", "--root", "/j")]
    [InlineData("--bind-rw ../x: the path must be absolute", "--root", "/j", "--bind-rw", "../x", "--", "/bin/x")]
    [InlineData("--bind-ro /a/../etc: the path must be absolute, without '..'", "--root", "/j", "--bind-ro", "/a/../etc", "--", "/bin/x")]
    [InlineData("--keep-cap sys_admin: unknown capability", "--root", "/j", "--keep-cap", "sys_admin", "--", "/bin/x")]
    [InlineData("--rlimit nproc: unknown limit", "--root", "/j", "--rlimit", "nproc=1", "--", "/bin/x")]
    [InlineData("--tap t=1: the descriptor must be a number of at least 3", "--root", "/j", "--tap", "t=1", "--", "/bin/x")]
    [InlineData("--root needs a value", "--root")]
    public void Bad_arguments_say_which_one_is_wrong(string message, params string[] args)
    {
        var e = Assert.Throws<ArgumentException>(() => JailOptions.Parse(args));
        Assert.StartsWith(message, e.Message);
    }
}

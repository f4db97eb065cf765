using CliWrap;
using CliWrap.Buffered;
using Sandbox.Hypervisors.Jail;

namespace Sandbox.Hypervisors.Tests.Jail;

/// <summary>The real sandbox-jailer around coreutils (no VM): what a jailed program sees and may do.</summary>
public class JailerTests
{
    private static async Task<BufferedCommandResult> JailedAsync(TempDirectory dir, JailOptions options)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return await Cli.Wrap(JailerBinary.Path).WithArguments(options.ToArguments()).WithValidation(CommandResultValidation.None)
            .ExecuteBufferedAsync(timeout.Token);
    }

    private static JailOptions Jail(TempDirectory dir, string program, params string[] args)
    {
        Directory.CreateDirectory(System.IO.Path.Combine(dir.Path, "jail"));
        var host = JailHostLayout.Detect();
        return new JailOptions
        {
            RootDirectory = System.IO.Path.Combine(dir.Path, "jail"),
            Program = program,
            Arguments = args,
            Mounts =
            [
                new(JailMountKind.ReadWrite, dir.Path),
                new(JailMountKind.ReadOnlyExecutable, program),
                .. host.LibraryDirectories.Select(d => new JailMount(JailMountKind.ReadOnlyExecutable, d)),
                new(JailMountKind.Device, "/dev/null"),
            ],
            Symlinks = host.LibrarySymlinks.Select(l => new JailSymlink(l.Key, l.Value)).ToArray(),
            Limits = new Dictionary<string, ulong> { ["core"] = 0 },
        };
    }

    [Fact]
    public async Task The_jail_root_holds_only_what_was_put_there_read_only()
    {
        using var dir = new TempDirectory();
        var result = await JailedAsync(dir, Jail(dir, "/usr/bin/ls", "-a", "/", "/dev"));
        Assert.True(result.ExitCode == 0, result.StandardError);
        var names = result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.DoesNotContain("etc", names);
        Assert.DoesNotContain("root", names);
        Assert.DoesNotContain("proc", names);
        Assert.Contains("null", names);
        Assert.DoesNotContain("sda", names);

        var write = await JailedAsync(dir, Jail(dir, "/usr/bin/touch", "/planted"));
        Assert.NotEqual(0, write.ExitCode);
        Assert.Contains("Read-only file system", write.StandardError);
        Assert.Empty(Directory.GetFileSystemEntries(System.IO.Path.Combine(dir.Path, "jail")));
    }

    [Fact]
    public async Task A_jailed_program_cannot_signal_other_processes_nor_make_setuid_files()
    {
        using var dir = new TempDirectory();
        var kill = await JailedAsync(dir, Jail(dir, "/usr/bin/kill", "-0", "1"));
        Assert.NotEqual(0, kill.ExitCode);
        Assert.Contains("Operation not permitted", kill.StandardError);

        string file = dir.File("f", "x");
        var chmod = await JailedAsync(dir, Jail(dir, "/usr/bin/chmod", "4755", file) with { RefuseSetIdModes = true });
        Assert.NotEqual(0, chmod.ExitCode);
        Assert.Equal(UnixFileMode.None, File.GetUnixFileMode(file) & (UnixFileMode.SetUser | UnixFileMode.SetGroup));
        var plain = await JailedAsync(dir, Jail(dir, "/usr/bin/chmod", "0755", file) with { RefuseSetIdModes = true });
        Assert.True(plain.ExitCode == 0, plain.StandardError);
    }

    [Fact]
    public async Task Capabilities_are_exactly_the_kept_ones_and_no_new_privileges_can_be_gained()
    {
        using var dir = new TempDirectory();
        var status = await JailedAsync(dir, Jail(dir, "/usr/bin/cat", "/proc/self/status") with { KeptCapabilities = ["chown", "fowner"], ProcSelf = true });
        Assert.True(status.ExitCode == 0, status.StandardError);
        string[] lines = status.StandardOutput.Split('\n');
        Assert.Contains("CapEff:\t0000000000000009", lines);
        Assert.Contains("CapBnd:\t0000000000000009", lines);
        Assert.Contains("NoNewPrivs:\t1", lines);
        Assert.Contains("Seccomp:\t2", lines);
    }

    [Fact]
    public async Task A_failing_step_says_what_failed()
    {
        using var dir = new TempDirectory();
        var result = await JailedAsync(dir, Jail(dir, "/usr/bin/true") with { Mounts = [new(JailMountKind.ReadOnlyData, "/no/such/file")] });
        Assert.Equal(1, result.ExitCode);
        Assert.Equal("sandbox-jailer: cannot start /usr/bin/true: /no/such/file does not exist, so it cannot be put into the jail\n", result.StandardError);

        var bad = await JailedAsync(dir, Jail(dir, "/usr/bin/true") with { NetworkNamespacePath = "/no/such/netns" });
        Assert.Contains("cannot open the network namespace /no/such/netns", bad.StandardError);
    }
}

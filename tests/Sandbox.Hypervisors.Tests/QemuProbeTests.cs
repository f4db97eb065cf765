using Sandbox.Hypervisors.HostDetection;

namespace Sandbox.Hypervisors.Tests;

public class QemuProbeTests
{
    [Theory]
    [InlineData("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022 Fabrice Bellard", "7.2.22")]
    [InlineData("QEMU emulator version 8.2.0\n", "8.2.0")]
    [InlineData("QEMU emulator version 9.1 (custom)\n", "9.1.0")]
    public void Parses_the_version(string output, string expected) => Assert.Equal(Version.Parse(expected), QemuProbe.ParseVersion(output));

    [Theory]
    [InlineData("")]
    [InlineData("qemu-img version 7.2.0")]
    [InlineData("bash: qemu-system-x86_64: command not found")]
    public void No_version_in_other_output(string output) => Assert.Null(QemuProbe.ParseVersion(output));

    [Fact]
    public async Task Runs_the_binary_for_its_version()
    {
        using var dir = new TempDirectory();
        var fake = dir.Executable("qemu", "#!/bin/sh\n[ \"$1\" = --version ] && echo 'QEMU emulator version 1.2.3 (fake)'\n");
        var result = await new QemuProbe().ProbeAsync(fake, CancellationToken.None);
        Assert.True(result.Usable);
        Assert.Equal(new Version(1, 2, 3), result.Version);
        Assert.Equal("QEMU emulator version 1.2.3 (fake)", result.VersionLine);
    }

    [Fact]
    public async Task A_binary_that_is_not_qemu_is_reported()
    {
        using var dir = new TempDirectory();
        var fake = dir.Executable("qemu", "#!/bin/sh\necho 'usage: something else' >&2\nexit 2\n");
        var result = await new QemuProbe().ProbeAsync(fake, CancellationToken.None);
        Assert.False(result.Usable);
        Assert.Contains("exited with 2", result.Reason);
        Assert.Contains("usage: something else", result.Reason);
    }

    [Fact]
    public async Task A_configured_path_that_does_not_exist_is_reported()
    {
        var result = await new QemuProbe().ProbeAsync("/nonexistent/qemu-system-x86_64", CancellationToken.None);
        Assert.False(result.Usable);
        Assert.Contains("/nonexistent/qemu-system-x86_64", result.Reason);
    }

    [Fact]
    public void Not_on_path()
    {
        Assert.Null(QemuProbe.Locate(null, out var reason, searchPath: "/nonexistent"));
        Assert.Contains("not on PATH", reason);
    }
}

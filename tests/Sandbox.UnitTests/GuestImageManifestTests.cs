using Sandbox.Runtime.Sandboxes;

namespace Sandbox.UnitTests;

public sealed class GuestImageManifestTests
{
    private static readonly string[] Lines =
    [
        "# Sandbox guest image manifest (images/build-image.sh)",
        "crun /usr/bin/crun sha256 abc package crun 1.8.1-1+deb12u1",
        "agent build/agent/sandbox-agent sha256 def",
        "f 755 /usr/bin/crun abc",
        "l 777 /bin/sh -> busybox",
    ];

    [Fact]
    public void Finds_files_of_the_initramfs()
    {
        var manifest = GuestImageManifest.Parse(Lines);
        Assert.True(manifest.ContainsFile("usr/bin/crun"));
        Assert.True(manifest.ContainsFile("/bin/sh"));
        Assert.False(manifest.ContainsFile("sbin/sandbox-agent"));
    }

    [Fact]
    public void Names_the_package_version_of_an_input()
    {
        var manifest = GuestImageManifest.Parse(Lines);
        Assert.Equal(" (package crun 1.8.1-1+deb12u1)", manifest.VersionOf("crun"));
        Assert.Equal("", manifest.VersionOf("agent"));
        Assert.Equal("", manifest.VersionOf("missing"));
    }
}

using System.Text;
using System.Text.Json;
using Sandbox.Shim.Start;

namespace Sandbox.Shim.Tests;

public class ShimBootstrapReplyTests
{
    private const string MatrixDirectory = "/var/cache/sandbox/containerd";

    [Fact]
    public void Containerd_2_gets_a_json_bootstrap_announcing_the_task_api_v3()
    {
        var reply = JsonDocument.Parse(ShimBootstrapReply.Format("unix:///run/sandbox/s/abc", 3)).RootElement;

        Assert.Equal(3, reply.GetProperty("version").GetInt32());
        Assert.Equal("unix:///run/sandbox/s/abc", reply.GetProperty("address").GetString());
        Assert.Equal("ttrpc", reply.GetProperty("protocol").GetString());
    }

    [Fact]
    public void Containerd_1_gets_the_plain_address()
    {
        Assert.Equal("unix:///run/sandbox/s/abc", ShimBootstrapReply.Format("unix:///run/sandbox/s/abc", 2));
    }

    [Theory]
    [InlineData("github.com/containerd/containerd/cmd/containerd", 1)]
    [InlineData("github.com/containerd/containerd/v2/cmd/containerd", 2)]
    [InlineData("github.com/containerd/containerd/v3/cmd/containerd", 3)]
    [InlineData("github.com/example/other/cmd/containerd", 0)]
    [InlineData(null, 0)]
    public void The_containerd_major_version_comes_from_the_main_package_path(string? mainPackage, int major)
    {
        Assert.Equal(major, ShimBootstrapReply.ContainerdMajorVersionOf(mainPackage));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_main_package_is_read_from_an_inline_go_buildinfo_section(bool withSentinels)
    {
        var section = new List<byte>();
        section.AddRange(new byte[] { 0xff }.Concat(Encoding.ASCII.GetBytes(" Go buildinf:")));
        section.Add(8);    // pointer size
        section.Add(0x2);  // flags: strings inline
        section.AddRange(new byte[16]);
        AddString(section, Encoding.ASCII.GetBytes("go1.24.4"));
        // the linker's 16-byte sentinels around the module information, as in containerd's binaries
        var sentinel = Convert.FromHexString("3077af0c9274080241e1c107e6d618e6");
        var modules = Encoding.ASCII.GetBytes("path\tgithub.com/containerd/containerd/v2/cmd/containerd\nmod\tgithub.com/containerd/containerd/v2\t(devel)\t\n");
        AddString(section, withSentinels ? sentinel.Concat(modules).Concat(sentinel).ToArray() : modules);

        Assert.Equal("github.com/containerd/containerd/v2/cmd/containerd", GoBuildInfo.MainPackageIn(section.ToArray()));
        Assert.Null(GoBuildInfo.MainPackageIn(new byte[40]));
    }

    [Fact]
    public void Containerd_1_6_passes_no_max_shim_version_and_gets_the_task_api_v2_without_its_binary_being_read()
    {
        Assert.Equal(2, ShimBootstrapReply.TaskApiVersionFor("/nonexistent/containerd", maxShimVersion: null));
    }

    [Fact]
    public void A_binary_that_is_not_go_reads_as_containerd_1()
    {
        Assert.Equal(2, ShimBootstrapReply.TaskApiVersionFor("/bin/sh", maxShimVersion: "2"));
        Assert.Null(GoBuildInfo.MainPackageOf("/nonexistent/containerd"));
    }

    /// <summary>The real binaries of the containerd matrix (images/setup-host.sh extracts them).</summary>
    [Theory]
    [InlineData("1.6", 2)]
    [InlineData("1.7", 2)]
    [InlineData("2", 3)]
    public void The_real_containerd_binaries_of_the_matrix_get_their_task_api(string label, int taskApiVersion)
    {
        string binary = Path.Combine(MatrixDirectory, label, "bin", "containerd");
        Assert.True(File.Exists(binary), $"{binary} is missing: run images/setup-host.sh (make setup)");

        Assert.Equal(taskApiVersion, ShimBootstrapReply.TaskApiVersionFor(binary, maxShimVersion: "2"));
    }

    private static void AddString(List<byte> section, byte[] bytes)
    {
        int length = bytes.Length;
        while (length >= 0x80)
        {
            section.Add((byte)(length | 0x80));
            length >>= 7;
        }
        section.Add((byte)length);
        section.AddRange(bytes);
    }
}

using System.Security.Cryptography;
using System.Text;
using Sandbox.Shim.Start;

namespace Sandbox.Shim.Tests;

public class ShimSocketAddressTests
{
    [Fact]
    public void Path_is_the_sha256_of_address_namespace_and_group_under_the_directory()
    {
        string path = ShimSocketAddress.PathFor("/run/containerd/containerd.sock", "k8s.io", "pod-1", "/run/sandbox/s");

        string expectedHash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("/run/containerd/containerd.sock/k8s.io/pod-1")));
        Assert.Equal("/run/sandbox/s/" + expectedHash, path);
        Assert.Equal(64, Path.GetFileName(path).Length);
    }

    [Fact]
    public void Same_group_gives_the_same_path_and_another_group_or_namespace_another()
    {
        string a = ShimSocketAddress.PathFor("/c.sock", "default", "podA", "/d");
        Assert.Equal(a, ShimSocketAddress.PathFor("/c.sock", "default", "podA", "/d"));
        Assert.NotEqual(a, ShimSocketAddress.PathFor("/c.sock", "default", "podB", "/d"));
        Assert.NotEqual(a, ShimSocketAddress.PathFor("/c.sock", "other", "podA", "/d"));
        Assert.NotEqual(a, ShimSocketAddress.PathFor("/other.sock", "default", "podA", "/d"));
    }

    [Fact]
    public void Default_directory_path_fits_the_unix_socket_limit()
    {
        string path = ShimSocketAddress.PathFor(new string('a', 500), "default", new string('b', 500), ShimSocketAddress.DefaultDirectory);
        Assert.True(Encoding.UTF8.GetByteCount(path) <= ShimSocketAddress.MaxPathBytes);
    }

    [Fact]
    public void A_directory_too_long_for_a_socket_path_is_a_clear_error()
    {
        string longDir = "/tmp/" + new string('x', 60);
        var e = Assert.Throws<InvalidOperationException>(() => ShimSocketAddress.PathFor("/c.sock", "default", "p", longDir));
        Assert.Contains(ShimSocketAddress.DirectoryVariable, e.Message);
    }

    [Fact]
    public void Address_and_path_convert_both_ways()
    {
        Assert.Equal("unix:///run/sandbox/s/ab", ShimSocketAddress.ToAddress("/run/sandbox/s/ab"));
        Assert.Equal("/run/sandbox/s/ab", ShimSocketAddress.ToPath("unix:///run/sandbox/s/ab"));
        Assert.Equal("/plain", ShimSocketAddress.ToPath("/plain"));
    }

    [Fact]
    public void Group_is_the_cri_sandbox_id_else_the_container_id()
    {
        Assert.Equal("pod-1", BundleConfig.GroupIdOf("""{"annotations":{"io.kubernetes.cri.sandbox-id":"pod-1","x":"y"}}""", "c1"));
        Assert.Equal("c1", BundleConfig.GroupIdOf("""{"annotations":{"x":"y"}}""", "c1"));
        Assert.Equal("c1", BundleConfig.GroupIdOf("""{"ociVersion":"1.0.2-dev"}""", "c1"));
        Assert.Equal("c1", BundleConfig.GroupIdOf("""{"annotations":{"io.kubernetes.cri.sandbox-id":""}}""", "c1"));
    }

    [Fact]
    public void Rootfs_is_roots_path_relative_to_the_bundle_unless_absolute_as_runc_reads_it()
    {
        Assert.Equal("/b/rootfs", BundleConfig.RootfsOf("""{"root":{"path":"rootfs","readonly":true}}""", "/b"));
        Assert.Equal("/b/rootfs", BundleConfig.RootfsOf("""{"ociVersion":"1.0.2"}""", "/b"));
        Assert.Equal("/srv/image", BundleConfig.RootfsOf("""{"root":{"path":"/srv/image"}}""", "/b")); // ctr run --rootfs
        Assert.Equal("/srv/image", BundleConfig.RootfsOf("""{"root":{"path":"../../srv/image"}}""", "/b/c"));
        Assert.Throws<FormatException>(() => BundleConfig.RootfsOf("""{"root":{"path":7}}""", "/b"));
        Assert.Throws<FormatException>(() => BundleConfig.RootfsOf("""{"root":{"path":""}}""", "/b"));
    }

    [Fact]
    public void Address_file_is_written_without_newline_and_replaced_atomically()
    {
        var dir = Directory.CreateTempSubdirectory("addr-").FullName;
        try
        {
            AddressFile.Write(dir, "unix:///a");
            AddressFile.Write(dir, "unix:///b");
            Assert.Equal("unix:///b", File.ReadAllText(Path.Combine(dir, "address")));
            Assert.False(File.Exists(Path.Combine(dir, ".address")));
            Assert.Equal("unix:///b", AddressFile.Read(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

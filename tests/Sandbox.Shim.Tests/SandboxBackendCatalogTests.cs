using Sandbox.Shim.Backend;
using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Shim.Tests;

/// <summary>The shipped shim runs containers only in VMs: no variable selects another backend, and the binary does not
/// carry the runc yardstick's code.</summary>
public sealed class SandboxBackendCatalogTests
{
    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("vm")]
    public void The_default_and_vm_are_the_VM_backend(string? name) => Assert.Equal("vm", SandboxBackendCatalog.Select(name).Name);

    [Fact]
    public void Runc_is_refused_with_an_error_that_says_why_and_what_to_do()
    {
        var error = Assert.Throws<InvalidOperationException>(() => SandboxBackendCatalog.Select("runc"));
        Assert.Contains("SANDBOX_SHIM_BACKEND=runc: this shim runs containers only in VMs", error.Message);
        Assert.Contains("Remove the variable", error.Message);
    }

    [Fact]
    public void An_unknown_backend_is_refused() =>
        Assert.Contains("names no backend", Assert.Throws<InvalidOperationException>(() => SandboxBackendCatalog.Select("kvm-direct")).Message);

    /// <summary>Native AOT keeps every compiled type's name for stack traces: the runc backend's would be there.</summary>
    [Fact]
    public void The_shipped_binary_contains_no_runc_backend()
    {
        // SANDBOX_SHIM_BINARY (make test: the Native AOT build), else the shim built next to the tests (its .dll)
        string path = ShimBinary.Locate();
        if (File.Exists(path + ".dll"))
            path += ".dll";
        byte[] binary = File.ReadAllBytes(path);
        Assert.True(Contains(binary, "VmSandboxBackend"u8), $"{path}: the control name VmSandboxBackend is missing, so the check would prove nothing");
        Assert.False(Contains(binary, "HostRuncBackend"u8), $"{path} contains HostRuncBackend");
        Assert.False(Contains(binary, "RuncYardstick"u8), $"{path} contains RuncYardstick");
    }

    private static bool Contains(byte[] haystack, ReadOnlySpan<byte> needle) => haystack.AsSpan().IndexOf(needle) >= 0;
}

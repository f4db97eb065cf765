namespace Sandbox.Shim.Tests;

/// <summary>The sandboxctl under test: $SANDBOXCTL_BINARY (`make test` sets it to build/ctl/sandboxctl), else the
/// checkout's build/ctl/sandboxctl. Not the copy next to the tests: that one would load the test directory's assemblies,
/// where ASP.NET's shared framework (for the fake agent) stands in for packages sandboxctl ships itself.</summary>
public static class SandboxctlBinary
{
    public const string Variable = "SANDBOXCTL_BINARY";

    public static string Locate()
    {
        string path = Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } configured
            ? configured
            : Path.Combine(Path.GetDirectoryName(Sandbox.Runtime.Sandboxes.GuestAssets.CheckoutDirectory() ?? "/nonexistent")!, "ctl", "sandboxctl");
        if (!File.Exists(path))
            throw new FileNotFoundException($"sandboxctl not found at {path}: run `make ctl`, or set {Variable}");
        return Path.GetFullPath(path);
    }
}

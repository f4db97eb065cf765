namespace Sandbox.Shim.Tests.Containerd;

/// <summary>
/// The containerd-shim-sandbox-v2 binary under test: $SANDBOX_SHIM_BINARY (e.g. the Native AOT build), else the
/// apphost built next to the test assembly.
/// </summary>
public static class ShimBinary
{
    public const string Variable = "SANDBOX_SHIM_BINARY";
    public const string FileName = "containerd-shim-sandbox-v2";

    public static string Locate()
    {
        if (Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } configured)
        {
            if (!File.Exists(configured))
                throw new FileNotFoundException($"{Variable}={configured} does not exist");
            return Path.GetFullPath(configured);
        }
        string local = Path.Combine(AppContext.BaseDirectory, FileName);
        if (!File.Exists(local))
            throw new FileNotFoundException($"{FileName} is not next to the tests ({local}); build the test project or set {Variable}");
        return local;
    }
}

/// <summary>containerd-shim-yardstick-v2 (tests/Sandbox.RuncYardstick): the shim with the runc backend, runtime
/// io.containerd.yardstick.v2; built next to the tests.</summary>
public static class YardstickShimBinary
{
    public const string FileName = "containerd-shim-yardstick-v2";
    public const string Runtime = "io.containerd.yardstick.v2";

    public static string Locate()
    {
        string local = Path.Combine(AppContext.BaseDirectory, FileName);
        if (!File.Exists(local))
            throw new FileNotFoundException($"{FileName} is not next to the tests ({local}); build Sandbox.Shim.Tests (it references tests/Sandbox.RuncYardstick)");
        return local;
    }
}

namespace Sandbox.Hypervisors.Tests.Jail;

/// <summary>The sandbox-jailer `make shim` publishes next to the shim: $SANDBOX_SHIM_BINARY's directory, else the
/// checkout's build/shim. Missing = a failed test that says how to build it, never a skip.</summary>
public static class JailerBinary
{
    public static string Path
    {
        get
        {
            string directory = Environment.GetEnvironmentVariable("SANDBOX_SHIM_BINARY") is { Length: > 0 } shim
                ? System.IO.Path.GetDirectoryName(shim)!
                : System.IO.Path.Combine(RepositoryRoot(), "build", "shim");
            string path = System.IO.Path.Combine(directory, "sandbox-jailer");
            Assert.True(File.Exists(path), $"{path} does not exist: build it with `make shim`");
            return path;
        }
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Sandbox.sln")))
                return dir.FullName;
        throw new InvalidOperationException("no Sandbox.sln above " + AppContext.BaseDirectory);
    }
}

namespace Sandbox.Ttrpc.Tests;

/// <summary>A short private directory for test sockets (Unix socket paths are limited to 107 bytes).</summary>
internal sealed class TestSocketDirectory : IDisposable
{
    public TestSocketDirectory()
    {
        Path = Directory.CreateTempSubdirectory("ttrpc-").FullName;
    }

    public string Path { get; }

    public string Socket(string name = "s.sock") => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}
